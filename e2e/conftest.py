"""Starts the release binaries (mock upstream + gateway) for end-to-end tests with the official SDK."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
ADMIN_KEY = "sk-admin-e2e-0123456789abcdef"
ACME_KEY = "sk-acme-e2e-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


CONFIG = """
listen = "127.0.0.1:{port}"
[server]
max_body_bytes = 1048576
[store]
url = "sqlite://{dir}/switchyard.db"
[admin]
key = "{admin}"
[retry]
backoff_base_ms = 20
backoff_max_ms = 200
[[providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
api_key = "sk-upstream"
[[providers]]
name = "dead"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[[models]]
name = "small"
provider = "mock"
upstream = "gpt-4o-mini"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
timeout_ms = 500
fallbacks = ["large"]
[[models]]
name = "large"
provider = "mock"
upstream = "gpt-4o"
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
[[models]]
name = "dead"
provider = "dead"
upstream = "gpt-4o-mini"
fallbacks = ["large"]
[[models]]
name = "error500"
provider = "mock"
upstream = "status-500"
fallbacks = ["large"]
[[models]]
name = "slow"
provider = "mock"
upstream = "hang"
timeout_ms = 500
fallbacks = ["large"]
[[models]]
name = "flaky"
provider = "mock"
upstream = "flaky-429-2"
[[tenants]]
name = "acme"
keys = ["{acme}"]
"""


class Gateway:
    def __init__(self, workdir: Path, mock_port: int, extra: str = ""):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "switchyard.toml"
        self.config.write_text(
            CONFIG.format(port=self.port, dir=workdir, admin=ADMIN_KEY, mock=mock_port, acme=ACME_KEY) + extra
        )
        self.proc = None

    def start(self) -> "Gateway":
        log = open(self.workdir / "gateway.log", "ab")
        self.proc = subprocess.Popen(
            [str(BIN / "switchyard"), "serve", "--config", str(self.config)],
            stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"},
        )
        wait_http(f"{self.url}/healthz")
        return self

    def stop(self) -> int:
        """Graceful shutdown, as an orchestrator does it: SIGTERM, then wait."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def admin(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


@pytest.fixture(scope="session")
def mock_port():
    port = free_port()
    proc = subprocess.Popen([str(BIN / "switchyard-mock"), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def gateway(tmp_path, mock_port):
    gw = Gateway(tmp_path, mock_port).start()
    yield gw
    if gw.proc.poll() is None:
        gw.stop()
