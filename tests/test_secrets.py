"""Secrets (issue 3): an API key never reaches the store, the cache, the output or the terminal.

A key is planted through ``OPENAI_API_KEY`` and through ``--api-key``; jobs run
clean, through faults, into an exhausted quota, and against a server that
echoes the key back in its error messages (as some do). Then every byte the
jobs wrote or printed is searched for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from anthropic.types.messages import MessageBatchIndividualResponse

from _e2e_helpers import read_jsonl, review_records, run_args, run_cli, subprocess_env, write_jsonl
from _fakes import QuietJSONHandler
from llmbatch._exceptions import ProviderError
from llmbatch._pack import PACKERS
from llmbatch._task import Task
from llmbatch._types import Item, Request
from llmbatch.providers import ProviderConfig, create_provider
from llmbatch.providers.anthropic import read_batch_result
from llmbatch.providers.base import scrub
from llmbatch.providers.openai import read_batch_line
from llmbatch.sim.server import ThreadedServer

KEY = "sk-test-SECRET-1234567890"
SECRET_PART = KEY.removeprefix("sk-test-")


class _EchoingServer(ThreadingHTTPServer):
    status = 401


class _Echo(QuietJSONHandler):
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
        self.reply_json(self.server.status, {"error": error})


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


# -- a server that echoes the key without its prefix ---------------------------------------

LONG_KEY = "sk-proj-Zx81Qm4TtRw0pLs9VbN2cYh7KdJe5GfA3uMiXo6"
LONG_MIDDLE = LONG_KEY[len(LONG_KEY) // 2 - 6 : len(LONG_KEY) // 2 + 6]


class _BareEcho(QuietJSONHandler):
    """Fails every request with ``status``, quoting the key as careless servers do: without
    its ``sk-`` prefix, its last 20 characters alone, and split in two by a line break."""

    server: _EchoingServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = self.headers.get("x-api-key") or self.headers.get("Authorization", "").removeprefix("Bearer ")
        half = len(token) // 2
        text = (
            f"key {token.removeprefix('sk-')} is not valid; ends in {token[-20:]}; "
            f"as sent: {token[:half]}\n{token[half:]}"
        )
        if self.path.endswith("/messages"):
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": text}}
        else:
            body = {"error": {"message": text, "type": "invalid_request_error", "code": None}}
        self.reply_json(self.server.status, body)


@pytest.fixture
def bare_echo() -> Iterator[Callable[[int], str]]:
    """``start(status)`` → the root URL of a server that echoes the key without its prefix."""
    servers: list[tuple[_EchoingServer, threading.Thread]] = []

    def start(status: int) -> str:
        server = _EchoingServer(("127.0.0.1", 0), _BareEcho)
        server.status = status
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _pack_request(pack: str) -> Request:
    task = Task(instructions="Label it.", output={"type": "string"})
    return PACKERS[pack].render(task, [Item(0, "r0", "fine")])


@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize(("provider_name", "pack"), [("openai", "json"), ("anthropic", "tools")])
async def test_a_key_echoed_without_its_prefix_is_masked(
    bare_echo: Callable[[int], str], status: int, provider_name: str, pack: str
) -> None:
    config = ProviderConfig(base_url=f"{bare_echo(status)}/v1", api_key=LONG_KEY)
    async with create_provider(provider_name, config) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(_pack_request(pack))
    message = str(caught.value)
    assert f"HTTP {status}" in message and "is not valid" in message  # the reason is kept
    assert LONG_MIDDLE not in message, message
    assert LONG_KEY[-20:] not in message and LONG_KEY[-12:] not in message
    assert LONG_KEY[:12] not in message  # the first half, before the line break


def test_scrub_masks_every_long_run_of_the_key_and_cuts_the_message() -> None:
    bare = LONG_KEY.removeprefix("sk-proj-")
    text = f"bad key {bare}; tail {LONG_KEY[-9:]}, short {LONG_KEY[5:12]} " + "x" * 5000
    scrubbed = scrub(text, LONG_KEY)
    assert LONG_MIDDLE not in scrubbed and bare[:8] not in scrubbed and LONG_KEY[-9:] not in scrubbed
    assert LONG_KEY[5:12] in scrubbed  # seven characters are not a secret: text stays readable
    assert scrubbed.startswith(f"bad key ***; tail ***, short {LONG_KEY[5:12]} xxx")
    assert len(scrubbed) <= 300
    assert scrub("a\n  b", None) == "a b"


def test_batch_line_errors_are_scrubbed() -> None:
    echoed = f"key {LONG_KEY.removeprefix('sk-')} rejected"
    line = {"custom_id": "p1", "response": {"status_code": 401, "body": {"error": {"message": echoed}}}}
    _, error = read_batch_line(line, LONG_KEY)
    assert isinstance(error, ProviderError) and LONG_MIDDLE not in str(error)
    entry = MessageBatchIndividualResponse.model_validate(
        {
            "custom_id": "p2",
            "result": {
                "type": "errored",
                "error": {"type": "error", "error": {"type": "authentication_error", "message": echoed}},
            },
        }
    )
    _, failed = read_batch_result(entry, LONG_KEY)
    assert isinstance(failed, ProviderError) and LONG_MIDDLE not in str(failed)
    assert "rejected" in str(failed)
