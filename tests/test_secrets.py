"""Secrets (issue 3): an API key never reaches the store, the cache, the output or the terminal.

A key is planted through ``OPENAI_API_KEY`` and through ``--api-key``; jobs run
clean, through faults, into an exhausted quota, and against a server that
echoes the key back in its error messages (as some do). Then every byte the
jobs wrote or printed is searched for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from _e2e_helpers import read_jsonl, review_records, run_args, run_cli, subprocess_env, write_jsonl
from llmbatch.sim.server import ThreadedServer

KEY = "sk-test-SECRET-1234567890"
SECRET_PART = KEY.removeprefix("sk-test-")


class _EchoingServer(ThreadingHTTPServer):
    status = 401


class _Echo(BaseHTTPRequestHandler):
    """Fails every request with ``status``, quoting the bearer token in the message."""

    server: _EchoingServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        error = {
            "message": f"Incorrect API key provided: {token}. Find your key at https://example.com/keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        body = json.dumps({"error": error}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[Callable[[int], str]]:
    """``start(status)`` → the base URL of a server that answers ``status`` and echoes the key."""
    servers: list[_EchoingServer] = []
    threads: list[threading.Thread] = []

    def start(status: int) -> str:
        server = _EchoingServer(("127.0.0.1", 0), _Echo)
        server.status = status
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server, thread in zip(servers, threads, strict=True):
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_the_api_key_is_nowhere(
    tmp_path: Path, sim_thread: Callable[..., ThreadedServer], echo_server: Callable[[int], str]
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", review_records(60, seed=4))
    cache = ["--cache-dir", str(tmp_path / "cache"), "--verbose"]
    printed: list[str] = []

    def run(name: str, base_url: str, *extra: str, env_key: bool = False) -> int:
        args = run_args(source, "sentiment", tmp_path / f"{name}.jsonl", tmp_path / name, base_url)
        env = subprocess_env(OPENAI_API_KEY=KEY) if env_key else subprocess_env()
        result = run_cli([*args, *cache, *extra, *([] if env_key else ["--api-key", KEY])], env=env)
        printed.append(result.stdout + result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode

    # A clean run, the key from the environment.
    assert run("clean", sim_thread().base_url, env_key=True) == 0
    # A run through faults: failed requests are logged (--verbose) and stored.
    faulty = sim_thread(
        seed=2, error_rate=0.3, timeout_rate=0.05, hang_seconds=3.0, corrupt_rate=0.1, malformed_rate=0.1
    )
    assert run("faulty", faulty.base_url, "--timeout", "1", "--no-cache") in (0, 3)
    # An exhausted quota: the job stops with one message (exit 4).
    assert run("quota", sim_thread(quota_exhausted=True).base_url) == 4
    assert "quota" in printed[-1]
    # A server that quotes the key back: 401 stops the job, 400 fails the records with its message.
    assert run("unauthorized", echo_server(401), env_key=True) == 4
    assert "check the API key" in printed[-1]
    assert run("rejected", echo_server(400), "--no-cache") == 3
    rows = read_jsonl(tmp_path / "rejected.jsonl")
    assert rows and all("Incorrect API key provided" in row["error"] for row in rows), rows[0]

    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "cache.sqlite" for path in files)
    assert sum(path.name == "job.sqlite" for path in files) == 5
    for path in files:
        data = path.read_bytes()
        assert SECRET_PART.encode() not in data, f"the API key is in {path.relative_to(tmp_path)}"
    for text in printed:
        assert SECRET_PART not in text, text
