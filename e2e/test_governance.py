"""Tenancy and governance acceptance, against the release binary with the official SDK."""
import concurrent.futures
import time
import uuid

import httpx
import openai
import pytest
from conftest import ADMIN_KEY, Gateway

MSG = [{"role": "user", "content": "hello"}]

EXTRA = """
[[tenants]]
name = "bursty"
keys = ["sk-bursty-e2e-key-01"]
rpm = 5
[[tenants]]
name = "frugal"
keys = ["sk-frugal-e2e-key-01"]
budget_usd = 0.000001
"""


def gateway_with(tmp_path, mock_port, extra):
    gw = Gateway(tmp_path, mock_port)
    gw.config.write_text(gw.config.read_text() + extra)
    return gw.start()


def client(gw, key):
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10)


def admin(gw, method, path, body=None):
    return httpx.request(method, f"{gw.url}{path}", json=body, timeout=10,
                         headers={"authorization": f"Bearer {ADMIN_KEY}"})


@pytest.fixture()
def gov(tmp_path, mock_port):
    gw = gateway_with(tmp_path, mock_port, EXTRA)
    yield gw
    if gw.proc.poll() is None:
        gw.stop()


def test_rpm_burst_gets_429_with_retry_after(gov):
    c = client(gov, "sk-bursty-e2e-key-01")
    outcomes = []
    for _ in range(7):
        try:
            c.chat.completions.create(model="small", messages=MSG)
            outcomes.append(200)
        except openai.RateLimitError as e:
            outcomes.append(429)
            last = e
    assert outcomes[:5] == [200] * 5 and outcomes[6] == 429
    assert int(last.response.headers["retry-after"]) >= 1
    assert last.response.headers["x-ratelimit-limit-requests"] == "5"


def test_tiny_budget_is_refused_after_spending_it(gov):
    c = client(gov, "sk-frugal-e2e-key-01")
    c.chat.completions.create(model="large", messages=MSG)
    time.sleep(0.2)
    with pytest.raises(openai.RateLimitError) as err:
        c.chat.completions.create(model="small", messages=MSG)
    body = err.value.response.json()["error"]
    assert body["type"] == "insufficient_quota" and "budget" in body["message"]


def test_admin_key_lifecycle_is_audited_and_never_stored_in_clear(gov, tmp_path):
    created = admin(gov, "POST", "/admin/keys", {"tenant": "acme", "name": "e2e"})
    assert created.status_code == 201
    key_id, secret = created.json()["id"], created.json()["key"]
    assert client(gov, secret).chat.completions.create(model="small", messages=MSG).choices[0].message.content
    assert admin(gov, "DELETE", f"/admin/keys/{key_id}").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        client(gov, secret).chat.completions.create(model="small", messages=MSG)
    events = admin(gov, "GET", "/admin/audit").json()["data"]
    seen = {(e["action"], e["target"], e["outcome"]) for e in events}
    assert ("key.create", key_id, "ok") in seen and ("key.revoke", key_id, "ok") in seen
    assert gov.stop() == 0
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("switchyard.db"))
    for plain in [secret, "sk-acme-e2e-0123456789", ADMIN_KEY]:
        assert plain.encode() not in blob


def test_two_replicas_share_one_rpm_through_redis(tmp_path, mock_port):
    prefix = f"sy-e2e-{uuid.uuid4().hex[:8]}:"
    shared = f"""
[state]
url = "redis://127.0.0.1:6379"
prefix = "{prefix}"
[[tenants]]
name = "shared"
keys = ["sk-shared-e2e-key-01"]
rpm = 10
"""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = gateway_with(tmp_path / "a", mock_port, shared)
    b = gateway_with(tmp_path / "b", mock_port, shared)
    try:
        def call(i):
            gw = a if i % 2 else b
            r = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "small", "messages": MSG},
                           headers={"authorization": "Bearer sk-shared-e2e-key-01"}, timeout=10)
            return r.status_code
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(24)))
        assert statuses.count(200) == 10 and statuses.count(429) == 14
    finally:
        a.stop()
        b.stop()
