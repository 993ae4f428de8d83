"""Issue 6 acceptance, as a new user would try it on the release binary with the official `openai`
SDK: with a tier-1 and a tier-3 model configured, `"model": "auto"` sends everyday short questions
to tier 1 and demanding multi-step tasks to tier 3 (prompts written for this test, never seen by
the classifier's training), every response explains its route, PII of a tenant restricted to
self-hosted models stays on a `self_hosted` provider, and `switchyard replay` reports on the
logged traffic."""
import subprocess

import httpx
import openai
import pytest
from conftest import ACME_KEY, BIN, Gateway

BANK_KEY = "sk-bank-e2e-0123456789"

ROUTING = """
[[providers]]
name = "onprem"
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
self_hosted = true
[[models]]
name = "cheap"
provider = "mock"
upstream = "gpt-4o-mini"
tier = 1
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
[[models]]
name = "strong"
provider = "mock"
upstream = "gpt-4o"
tier = 3
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
[[models]]
name = "onprem"
provider = "onprem"
upstream = "llama-onprem"
tier = 1
input_usd_per_mtok = 0.5
output_usd_per_mtok = 0.5
[[tenants]]
name = "bank"
keys = ["{bank}"]
data_policy = "self-hosted-only-for-pii"
"""

EVERYDAY = [
    "what time zone is Chicago in?",
    "Can you recommend a good name for a golden retriever puppy?",
    "How do you say 'thank you' in Japanese?",
    "Is a tomato a fruit or a vegetable?",
    "convert 5 miles to km",
    "Who painted the Mona Lisa?",
]
DEMANDING = [
    "Design a fault-tolerant event-sourcing architecture for an online bank ledger: the aggregates, "
    "the event schema and its versioning, snapshotting, how projections are rebuilt, exactly-once "
    "semantics across Kafka and PostgreSQL, and a migration plan from the current CRUD tables.",
    "Prove that the sum of the reciprocals of the primes diverges. Give a complete, rigorous proof "
    "and explain each inequality you use.",
    "Write a complete Python implementation of a B+ tree with insert, delete (with merging and "
    "redistribution), range queries and bulk loading, with type hints and unit tests for every "
    "operation.",
    "Our SaaS churn went from 3% to 7% monthly over two quarters. Build an analysis plan: the "
    "hypotheses, the cohorts and metrics to pull, the statistical tests, how to separate pricing "
    "effects from product quality, and how you'd present the findings to the board.",
]


@pytest.fixture()
def gw(tmp_path, mock_port):
    g = Gateway(tmp_path, mock_port, ROUTING.format(mock=mock_port, bank=BANK_KEY)).start()
    yield g
    if g.proc.poll() is None:
        g.stop()


def client(gw, key=ACME_KEY):
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10)


def ask(gw, text, key=ACME_KEY):
    return client(gw, key).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}])


@pytest.mark.parametrize("prompt", EVERYDAY)
def test_everyday_questions_go_to_tier_one(gw, prompt):
    resp = ask(gw, prompt)
    assert resp.headers["x-switchyard-model"] == "cheap", resp.headers["x-switchyard-route"]
    assert resp.headers["x-switchyard-route"].startswith("tier=1; model=cheap; reason=classifier")
    assert resp.parse().choices[0].message.content == f"mock reply: {prompt}"


@pytest.mark.parametrize("prompt", DEMANDING)
def test_demanding_tasks_go_to_tier_three(gw, prompt):
    resp = ask(gw, prompt)
    assert resp.headers["x-switchyard-model"] == "strong", resp.headers["x-switchyard-route"]
    route = resp.headers["x-switchyard-route"]
    assert route.startswith("tier=3; model=strong; reason=classifier; score="), route
    row = gw.admin(f"/admin/requests/{resp.headers['x-request-id']}").json()
    assert row["metadata"]["route"]["tier"] == 3


def test_explicit_models_explain_their_route_too(gw):
    resp = client(gw).chat.completions.with_raw_response.create(
        model="strong", messages=[{"role": "user", "content": "hi"}])
    assert resp.headers["x-switchyard-route"] == "model=strong; reason=requested"


def test_pii_of_a_self_hosted_only_tenant_stays_on_prem(gw, mock_port):
    text = "Please update the mailing address for customer maria.gomez@example.org, IBAN DE89370400440532013000."
    resp = ask(gw, text, key=BANK_KEY)
    assert resp.headers["x-switchyard-model"] == "onprem"
    assert "data_policy=self-hosted-only-for-pii" in resp.headers["x-switchyard-route"]
    seen = httpx.get(f"http://127.0.0.1:{mock_port}/_mock/last/llama-onprem", timeout=5).json()
    assert "maria.gomez@example.org" in str(seen)
    # Asking for the hosted model by name is refused for such a request.
    with pytest.raises(openai.PermissionDeniedError) as e:
        client(gw, BANK_KEY).chat.completions.create(
            model="strong", messages=[{"role": "user", "content": text}])
    assert e.value.code == "model_not_allowed"
    # Without PII the bank's everyday question goes to the cheapest model as usual.
    assert ask(gw, EVERYDAY[0], key=BANK_KEY).headers["x-switchyard-model"] == "cheap"


def test_replay_reports_on_the_logged_traffic(gw, tmp_path):
    for prompt in EVERYDAY[:3] + DEMANDING[:2]:
        ask(gw, prompt)
    gw.stop()  # graceful: every record is in the store
    # The new config drops the tier-3 model from `auto`.
    new = tmp_path / "new.toml"
    new.write_text(gw.config.read_text().replace('upstream = "gpt-4o"\ntier = 3\n', 'upstream = "gpt-4o"\n'))
    out = subprocess.run([str(BIN / "switchyard"), "replay", "--config", str(new), "--since", "1d"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = out.stdout
    assert "5 `auto` requests re-decided, 2 changed model" in report, report
    assert "| strong | 2 | 40.0% | 0 | 0.0% |" in report, report
    assert "projected" in report
