"""Issue 5 acceptance: `[cache] enabled = true, semantic = true` on the release binary, tried with
the official `openai` SDK: exact hits skip the upstream, tenants are isolated, no-cache bypasses,
streams replay, paraphrases hit the semantic layer and near-misses never do."""
import time

import httpx
import openai
import pytest
from conftest import ACME_KEY, ADMIN_KEY, ROOT, Gateway

CACHE = f"""
[cache]
enabled = true
semantic = true
embedding_model = "local-embed"

[[providers]]
name = "local"
kind = "local"
embedding_model_path = "{ROOT / 'models' / 'all-MiniLM-L6-v2'}"

[[models]]
name = "local-embed"
provider = "local"
"""


@pytest.fixture()
def cached_gateway(tmp_path, mock_port):
    gw = Gateway(tmp_path, mock_port, CACHE).start()
    yield gw
    if gw.proc.poll() is None:
        gw.stop()


def ask(gw, question, key=ACME_KEY, **kw):
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10)
    raw = c.chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": question}], **kw)
    return raw.headers["x-switchyard-cache"], raw.parse()


def upstream_calls(gw):
    rows = gw.admin("/admin/requests?limit=500").json()["data"]
    return sum(1 for r in rows if r.get("attempts", 0) > 0)


def settle():
    time.sleep(0.2)  # the answer is stored after the response is sent


def test_exact_hits_tenants_and_no_cache(cached_gateway):
    gw = cached_gateway
    status, first = ask(gw, "What is the capital of France?")
    assert status == "miss"
    settle()
    status, again = ask(gw, "What is the capital of France?")
    assert status == "hit-exact"
    assert again.choices[0].message.content == first.choices[0].message.content
    assert ask(gw, "What is the capital of France?", key=ADMIN_KEY)[0] == "miss"
    assert ask(gw, "What is the capital of France?", extra_headers={"cache-control": "no-cache"})[0] == "bypass"
    log = gw.admin("/admin/requests?limit=10").json()["data"]
    hit = next(r for r in log if r["cache"] == "hit-exact")
    assert hit["attempts"] == 0 and hit["cost_usd"] == 0


def test_streaming_client_gets_the_cached_answer_as_a_stream(cached_gateway):
    gw = cached_gateway
    _, first = ask(gw, "Which ocean is the largest?")
    settle()
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=ACME_KEY, max_retries=0, timeout=10)
    with c.chat.completions.with_streaming_response.create(
            model="small", messages=[{"role": "user", "content": "Which ocean is the largest?"}],
            stream=True) as resp:
        assert resp.headers["x-switchyard-cache"] == "hit-exact"
        text = "".join(ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices)
    assert text == first.choices[0].message.content


def test_paraphrases_hit_and_near_misses_never_do(cached_gateway):
    gw = cached_gateway
    seeds = ["How do I reset my password?", "What is the capital of France?",
             "How long does shipping to Canada take?", "Can I get a refund after 30 days?"]
    answers = {}
    for q in seeds:
        answers[q] = ask(gw, q)[1].choices[0].message.content
    settle()
    paraphrases = {"How can I reset my password?": seeds[0],
                   "How long does shipping to Canada usually take?": seeds[2]}
    for q, original in paraphrases.items():
        status, resp = ask(gw, q)
        assert status == "hit-semantic", q
        assert resp.choices[0].message.content == answers[original]
    near_misses = ["What is the capital of Germany?", "How long does shipping to Mexico take?",
                   "Can I get a refund after 60 days?", "Can I not get a refund after 30 days?"]
    for q in near_misses:
        assert ask(gw, q)[0] == "miss", q


def test_invalidate_and_stats(cached_gateway):
    gw = cached_gateway
    ask(gw, "What are your opening hours?", extra_headers={"x-switchyard-tags": "faq"})
    settle()
    assert ask(gw, "What are your opening hours?", extra_headers={"x-switchyard-tags": "faq"})[0] == "hit-exact"
    r = httpx.post(f"{gw.url}/admin/cache/invalidate", json={"tag": "faq"},
                   headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200 and r.json()["removed"]["exact"] >= 1
    assert ask(gw, "What are your opening hours?", extra_headers={"x-switchyard-tags": "faq"})[0] == "miss"
    stats = gw.admin("/admin/cache/stats").json()
    assert any(row["tag"] == "faq" and row["hits_exact"] >= 1 for row in stats["data"])
