"""The gateway core's acceptance, tried as a new user would: the official `openai` SDK against the
release binary in front of the workspace's mock upstream."""
import asyncio
import time

import httpx
import openai
import pytest
from conftest import ACME_KEY, ADMIN_KEY, Gateway

HEADERS = ["x-request-id", "x-switchyard-model", "x-switchyard-provider", "x-switchyard-cost-usd",
           "x-switchyard-attempts"]
FIELDS = ["request_id", "ts_ms", "tenant", "key_id", "model_requested", "model_used", "provider", "status",
          "error_kind", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "ttft_ms", "attempts",
          "stream", "tags", "metadata"]
MSG = [{"role": "user", "content": "hello gateway"}]


def client(gw, key=ACME_KEY):
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=10)


def test_chat_non_streaming_with_usage_and_headers(gateway):
    raw = client(gateway).chat.completions.with_raw_response.create(model="small", messages=MSG)
    for h in HEADERS:
        assert raw.headers.get(h), h
    assert raw.headers["x-switchyard-model"] == "small"
    assert float(raw.headers["x-switchyard-cost-usd"]) > 0
    completion = raw.parse()
    assert completion.choices[0].message.content == "mock reply: hello gateway"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0


def test_chat_streaming_reassembles_text_with_usage_and_headers(gateway):
    c = client(gateway)
    with c.chat.completions.with_streaming_response.create(
            model="small", messages=MSG, stream=True, stream_options={"include_usage": True}) as resp:
        for h in HEADERS:
            assert resp.headers.get(h), h
        chunks = list(resp.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "mock reply: hello gateway"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_tools_and_response_format_pass_through(gateway):
    c = client(gateway)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    r = c.chat.completions.create(model="small", messages=MSG, tools=tools)
    assert r.choices[0].message.tool_calls[0].function.name == "lookup"
    r = c.chat.completions.create(model="small", messages=MSG, response_format={"type": "json_object"})
    assert r.choices[0].message.content.startswith("{")


def test_errors_have_openai_shape_and_status(gateway):
    with pytest.raises(openai.AuthenticationError):
        client(gateway, key="sk-wrong-0000000").chat.completions.create(model="small", messages=MSG)
    with pytest.raises(openai.NotFoundError):
        client(gateway).chat.completions.create(model="no-such-model", messages=MSG)
    with pytest.raises(openai.BadRequestError):
        client(gateway).chat.completions.create(model="small", messages=[])
    url = f"{gateway.url}/v1/chat/completions"
    auth = {"authorization": f"Bearer {ACME_KEY}"}
    r = httpx.post(url, headers={**auth, "content-type": "application/json"}, content=b"{oops")
    assert r.status_code == 400 and set(r.json()["error"]) >= {"message", "type", "code"}
    r = httpx.post(url, headers={**auth, "content-type": "application/json"}, content=b"x" * (2 * 1024 * 1024))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.get(f"{gateway.url}/admin/requests", headers=auth)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    r = httpx.get(f"{gateway.url}/admin/requests")
    assert r.status_code == 401


@pytest.mark.parametrize("model", ["dead", "error500", "slow"])
def test_faults_fall_back_to_the_next_model(gateway, model):
    started = time.monotonic()
    raw = client(gateway).chat.completions.with_raw_response.create(model=model, messages=MSG)
    assert raw.headers["x-switchyard-model"] == "large"
    assert raw.parse().choices[0].message.content == "mock reply: hello gateway"
    if model == "slow":
        assert time.monotonic() - started < 2.5


def test_rate_limited_upstream_is_retried(gateway):
    raw = client(gateway).chat.completions.with_raw_response.create(model="flaky", messages=MSG)
    assert raw.headers["x-switchyard-model"] == "flaky"
    assert int(raw.headers["x-switchyard-attempts"]) == 3


def test_request_log_lists_every_request_and_survives_restart(gateway):
    c = client(gateway)
    ok = c.chat.completions.with_raw_response.create(model="small", messages=MSG, extra_headers={"x-switchyard-tags": "e2e"})
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="missing", messages=MSG)
    rows = gateway.admin("/admin/requests?limit=10").json()["data"]
    assert len(rows) == 2
    assert rows[0]["status"] == 404 and rows[1]["status"] == 200
    for f in FIELDS:
        assert f in rows[1], f
    assert rows[1]["tags"] == ["e2e"] and rows[1]["tenant"] == "acme" and rows[1]["cost_usd"] > 0
    assert gateway.stop() == 0
    gateway.start()
    one = gateway.admin(f"/admin/requests/{ok.headers['x-request-id']}").json()
    assert one["model_used"] == "small" and one["status"] == 200
    assert len(gateway.admin("/admin/requests?limit=10").json()["data"]) == 2


def test_200_concurrent_requests_all_logged_after_graceful_shutdown(gateway):
    async def run():
        c = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=ACME_KEY, max_retries=0, timeout=30,
                               http_client=openai.DefaultAsyncHttpxClient(
                                   limits=httpx.Limits(max_connections=200)))
        results = await asyncio.gather(*[
            c.chat.completions.create(model="small", messages=[{"role": "user", "content": f"n{i}"}],
                                      stream=(i % 4 == 0))
            for i in range(200)])
        texts = []
        for r in results:
            if isinstance(r, openai.AsyncStream):
                texts.append("".join([ch.choices[0].delta.content or "" async for ch in r if ch.choices]))
            else:
                texts.append(r.choices[0].message.content)
        await c.close()
        return texts

    texts = asyncio.run(run())
    assert len(texts) == 200 and all(t.startswith("mock reply: n") for t in texts)
    assert gateway.stop() == 0
    gateway.start()
    rows = gateway.admin("/admin/requests?limit=1000").json()["data"]
    assert len(rows) == 200
    assert all(r["status"] == 200 for r in rows)


def test_metrics_show_counters_and_histogram(gateway):
    client(gateway).chat.completions.create(model="small", messages=MSG)
    text = httpx.get(f"{gateway.url}/metrics").text
    for name in ["switchyard_requests_total", "switchyard_request_duration_seconds_bucket",
                 "switchyard_ttft_seconds", "switchyard_tokens_total", "switchyard_cost_usd_total"]:
        assert name in text, name


def test_check_config_names_the_bad_key(tmp_path, mock_port):
    import subprocess
    from conftest import BIN
    gw = Gateway(tmp_path, mock_port)
    bad = gw.config.read_text().replace('fallbacks = ["large"]', 'fallbacks = ["nope"]', 1)
    gw.config.write_text(bad)
    out = subprocess.run([str(BIN / "switchyard"), "check-config", "--config", str(gw.config)],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert 'models[0].fallbacks[0]' in out.stderr and "nope" in out.stderr


def test_refuses_to_start_without_admin_key_and_generates_one(tmp_path, mock_port):
    import subprocess
    from conftest import BIN, free_port, wait_http
    gw = Gateway(tmp_path, mock_port)
    gw.config.write_text(gw.config.read_text().replace(f'key = "{ADMIN_KEY}"', ""))
    env = {"PATH": "/usr/bin:/bin", "RUST_LOG": "info"}
    proc = subprocess.Popen([str(BIN / "switchyard"), "serve", "--config", str(gw.config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_http(f"{gw.url}/healthz")
        key_file = tmp_path / "admin.key"
        assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
        key = key_file.read_text().strip()
        r = httpx.get(f"{gw.url}/admin/requests", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert str(key_file) in err and key not in err
