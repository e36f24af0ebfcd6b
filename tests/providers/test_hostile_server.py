"""Endpoints that answer 200 with something other than an answer, or answer too slowly.

A wrong ``--base-url`` or a proxy's login page answers 200 with HTML; a broken
server answers JSON that is not a completion, nothing, or half a body; a stuck
one sends its headers and then one byte at a time. Each must become one clear,
retryable llmbatch error at the provider edge (never an ``AttributeError`` out of
the SDK), with no API key in it, and ``--timeout`` must bound the whole request.

The server is a plain ``http.server`` on 127.0.0.1 in a thread, so the same one
serves the async provider calls and a whole ``llmbatch run``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from _e2e_helpers import invoke, load_task, read_jsonl, review_records, run_args, write_jsonl
from llmbatch._exceptions import ConnectionFailed, NotAnAPI, ProviderError, RequestTimeout, ServerError
from llmbatch._pack import PACKERS
from llmbatch._task import Task
from llmbatch._types import Item, Request
from llmbatch.providers import Provider, ProviderConfig, create_provider
from llmbatch.providers.base import batch_api
from llmbatch.providers.openai import OpenAIProvider

KEY = "sk-hostile-0123456789abcdefghijKLMNOPQRSTUV"
BARE_KEY = KEY.removeprefix("sk-")
"""What a careless server echoes: the key without its ``sk-`` prefix."""
MIDDLE = KEY[len(KEY) // 2 - 6 : len(KEY) // 2 + 6]
"""Twelve characters from the middle of the key: they must appear in no message."""

LOGIN_PAGE = (
    f"<html><head><title>Corporate proxy: session {BARE_KEY} expired</title></head>"
    "<body><form>Sign in again</form></body></html>"
)
"""A proxy's sign-in page, the key in its first 80 characters (the part an error quotes)."""


@dataclass
class Answer:
    """What the server sends to every POST."""

    body: bytes = b""
    content_type: str = "application/json"
    status: int = 200
    trickle: float = 0.0
    """Seconds between single bytes of the body after the headers (0: all at once)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    answer = Answer()
    stopping = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # the batch API's polls
        self.do_POST()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.server.answer
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        if answer.trickle:
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(400):  # a bound, so a thread never outlives the test by much
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    if self.server.stopping.wait(answer.trickle):
                        return
            except OSError:  # the client hung up, as it should
                return
            return
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[Callable[[Answer], str]]:
    """``serve(answer)`` → the root URL of a server that sends ``answer`` to every request."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(answer: Answer) -> str:
        server.answer = answer
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    server.stopping.set()
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def request(pack: str) -> Request:
    task = load_task("sentiment")
    items = [Item(0, "r0", task.render_input({"title": "ok", "text": "fine kettle"}))]
    return PACKERS[pack].render(task, items)


def make(name: str, root: str, timeout: float = 30.0) -> Provider:
    # The OpenAI SDK wants the /v1 prefix in the URL; the Anthropic provider accepts either.
    return create_provider(name, ProviderConfig(base_url=f"{root}/v1", api_key=KEY, timeout=timeout))


PROVIDERS = [("openai", "json"), ("anthropic", "tools"), ("gemini", "json")]


async def failure(provider_name: str, pack: str, root: str) -> ProviderError:
    async with make(provider_name, root) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(request(pack))
    return caught.value


# -- a 200 that is not an answer ---------------------------------------------------------


@pytest.mark.parametrize(("provider_name", "pack"), PROVIDERS)
async def test_an_html_page_is_not_the_api_and_the_error_names_the_content_type(
    hostile: Callable[[Answer], str], provider_name: str, pack: str
) -> None:
    root = hostile(Answer(LOGIN_PAGE.encode(), "text/html; charset=utf-8"))
    error = await failure(provider_name, pack, root)

    # Not the API at all: treated as the endpoint not being there (retried, never failing
    # records, stopping the job once it lasts), not as a server error of the API.
    assert isinstance(error, NotAnAPI), repr(error)
    message = str(error)
    assert "text/html" in message and "not JSON" in message and "--base-url" in message
    assert "Corporate proxy: session ***" in message  # the start of the body says what answered
    assert len(message) < 300
    assert MIDDLE not in message and BARE_KEY not in message


@pytest.mark.parametrize(("provider_name", "pack"), PROVIDERS)
@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b'{"foo": 1}', "application/json", "not a"),
        (b"[1, 2, 3]", "application/json", "not a"),
        (b"", "application/json", "empty"),
        (b'{"id": "chatcmpl-1", "choices": [{"index": 0, "mess', "application/json", "not valid"),
        (b"null", "application/json", "not a"),
        (b'{"choices": [{"message": "no"}]}', "application/json", "not a"),
    ],
    ids=["object", "list", "empty", "truncated", "null", "bad-choice"],
)
async def test_json_that_is_not_an_answer_is_a_server_error(
    hostile: Callable[[Answer], str],
    provider_name: str,
    pack: str,
    body: bytes,
    content_type: str,
    words: str,
) -> None:
    error = await failure(provider_name, pack, hostile(Answer(body, content_type)))
    assert isinstance(error, ServerError), repr(error)
    assert words in str(error), str(error)


@pytest.mark.slow
def test_a_job_against_an_html_endpoint_stops_with_one_clear_reason_and_fails_no_record(
    tmp_path: Path, hostile: Callable[[Answer], str]
) -> None:
    root = hostile(Answer(LOGIN_PAGE.encode(), "text/html"))
    source = write_jsonl(tmp_path / "in.jsonl", review_records(2, seed=1))
    out = tmp_path / "out.jsonl"
    args = run_args(source, "sentiment", out, tmp_path / "job", f"{root}/v1", batch_size=2, concurrency=1)
    result = invoke([*args, "--api-key", KEY, "--no-cache", "--outage-timeout", "1"])

    # Stopped, resumable (exit 4): one line saying what answered, every record kept.
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output and "AttributeError" not in result.output
    assert "text/html" in result.stderr and "--base-url" in result.stderr
    rows = read_jsonl(out)
    assert [row["status"] for row in rows] == ["stopped", "stopped"]
    assert MIDDLE not in result.output and all(MIDDLE not in row["error"] for row in rows)


# -- --timeout bounds the whole request -------------------------------------------------


@pytest.mark.parametrize(("provider_name", "pack"), PROVIDERS)
async def test_a_body_that_trickles_in_is_cut_at_the_timeout(
    hostile: Callable[[Answer], str], provider_name: str, pack: str
) -> None:
    # Headers at once, then one byte every 0.5 s: each read is quick, the answer never comes.
    root = hostile(Answer(trickle=0.5))
    async with make(provider_name, root, timeout=1.0) as provider:
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as caught:
            await provider.complete(request(pack))
        took = time.monotonic() - started
    assert took < 3.0, took
    assert "--timeout 1" in str(caught.value)


@pytest.mark.parametrize("provider_name", ["openai", "anthropic"])
async def test_a_batch_poll_that_trickles_in_is_cut_at_the_timeout(
    hostile: Callable[[Answer], str], provider_name: str
) -> None:
    root = hostile(Answer(trickle=0.5))
    async with make(provider_name, root, timeout=1.0) as provider:
        batches = batch_api(provider)
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            await batches.poll_batch("batch_1")
    assert time.monotonic() - started < 3.0


async def test_a_refused_connection_is_unreachable_at_once_not_a_timeout() -> None:
    # The SDK's aiohttp transport calls every connection error a connect timeout; a refused
    # port must still read as unreachable (retried without failing records), and at once.
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIProvider(
        ProviderConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-t", timeout=30)
    )
    task = Task(instructions="x")
    started = time.monotonic()
    async with provider:
        with pytest.raises(ConnectionFailed, match="cannot reach the endpoint"):
            await provider.complete(PACKERS["json"].render(task, [Item(0, "a", "b"), Item(1, "c", "d")]))
    assert time.monotonic() - started < 5
