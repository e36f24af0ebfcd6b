"""The simulator over HTTP: an OpenAI-compatible server on aiohttp.

Routes::

    POST /v1/chat/completions   the engine's answer
    POST /v1/messages           the same engine behind Anthropic's Messages API (``_anthropic``)
    GET  /v1/models             the configured model
    POST /v1/files, GET /v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}
                                OpenAI's Batch API (``_batches``)
    POST /v1/messages/batches, GET /v1/messages/batches/{id}[/results]
                                Anthropic's Message Batches API (``_batches``)
    POST /v1beta/models/{model}:generateContent
                                the engine behind Gemini's native API (``_gemini``)
    POST /upload/v1beta/files, POST /v1beta/models/{model}:batchGenerateContent,
    GET /v1beta/batches/{id}, GET [/download]/v1beta/files/{id}:download
                                Gemini's Batch Mode (``_batches``)
    GET  /sim/stats             counters (requests, statuses, items, tokens, 429s, batches, ...)
    POST /sim/reset             zero the counters

Three ways to run it: ``async with SimServer(config) as server`` inside a test's
event loop; ``with run_in_thread(config) as server`` from synchronous code (a
CLI under test), on its own loop in a daemon thread; ``serve(...)`` blocking,
for ``llmbatch sim serve``.

The runner is built with ``handler_cancellation=True``: when a client gives up
on a hung request and closes the connection, the handler is cancelled instead
of sleeping on for an hour.

Why one module: it is the HTTP surface, each route beside its thin handler (read the
body, call the API module, write its answer), and the three ways to run it. The APIs
themselves live in ``engine``, ``_anthropic``, ``_gemini`` and ``_batches``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from aiohttp import web

from ._anthropic import AnthropicMessages
from ._batches import SimBatches
from ._gemini import GeminiAPI, gemini_error
from .config import SimConfig
from .engine import SimEngine, SimResponse

__all__ = ["SimServer", "ThreadedServer", "build_app", "run_in_thread", "serve"]

_ENGINE: web.AppKey[SimEngine] = web.AppKey("engine", SimEngine)
_MESSAGES: web.AppKey[AnthropicMessages] = web.AppKey("messages", AnthropicMessages)
_BATCHES: web.AppKey[SimBatches] = web.AppKey("batches", SimBatches)
_GEMINI: web.AppKey[GeminiAPI] = web.AppKey("gemini", GeminiAPI)


def build_app(engine: SimEngine, batches: SimBatches | None = None) -> web.Application:
    """The aiohttp application serving ``engine`` (and its batch APIs, ``batches``)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_ENGINE] = engine
    app[_MESSAGES] = AnthropicMessages(engine)
    app[_GEMINI] = GeminiAPI(engine)
    _add_batch_routes(app, batches or SimBatches(engine))
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/messages", _messages)
    app.router.add_post("/v1beta/models/{target}", _gemini_models)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/sim/stats", _stats)
    app.router.add_post("/sim/reset", _reset)
    return app


async def _chat(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None  # the engine answers 400 for a body that is not an object
    response = await engine.chat(body)
    return web.json_response(response.body, status=response.status, headers=response.headers)


async def _messages(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None  # answered 400 invalid_request_error
    response = await request.app[_MESSAGES].create(body)
    return web.json_response(response.body, status=response.status, headers=response.headers)


async def _gemini_models(request: web.Request) -> web.Response:
    """``{model}:generateContent`` and ``{model}:batchGenerateContent``."""
    model, _, method = request.match_info["target"].partition(":")
    body = await _json_body(request)
    if method == "generateContent":
        response = await request.app[_GEMINI].generate(model, body)
    elif method == "batchGenerateContent":
        response = request.app[_BATCHES].create_gemini(model, body)
    else:
        response = gemini_error(404, f"method {method!r} is not served by the simulator")
    return _json(response)


async def _gemini_upload(request: web.Request) -> web.Response:
    """A resumable upload: ``start`` answers the URL to send the bytes to; ``upload, finalize``
    there answers the file."""
    batches = request.app[_BATCHES]
    command = request.headers.get("X-Goog-Upload-Command", "")
    if command == "start":
        upload_id = batches.start_upload(await _json_body(request))
        url = f"{request.url.origin()}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
        return web.json_response({}, headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})
    upload_id = request.query.get("upload_id", "")
    if "finalize" not in command:
        body = {
            "error": {"code": 400, "message": "send the whole file at once", "status": "INVALID_ARGUMENT"}
        }
        return web.json_response(body, status=400)
    response = batches.finish_upload(upload_id, await request.read())
    return _json(dataclasses.replace(response, headers={"X-Goog-Upload-Status": "final"}))


async def _gemini_batch(request: web.Request) -> web.Response:
    return _json(request.app[_BATCHES].get_gemini(request.match_info["id"]))


async def _gemini_download(request: web.Request) -> web.Response:
    file_id = request.match_info["target"].removesuffix(":download")
    data = request.app[_BATCHES].file_content(file_id)
    if data is None:
        return _json(gemini_error(404, f"files/{file_id} not found"))
    return web.Response(body=data, content_type="application/octet-stream")


async def _models(request: web.Request) -> web.Response:
    model = request.app[_ENGINE].config.model
    entry = {"id": model, "object": "model", "created": 0, "owned_by": "llmbatch-sim"}
    return web.json_response({"object": "list", "data": [entry]})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(_snapshot(request.app[_ENGINE], request.app[_BATCHES]))


async def _reset(request: web.Request) -> web.Response:
    request.app[_ENGINE].reset_stats()
    request.app[_BATCHES].reset_stats()
    return web.json_response({"ok": True})


def _snapshot(engine: SimEngine, batches: SimBatches) -> dict[str, Any]:
    return {**engine.stats.snapshot(), "batches": batches.stats.snapshot()}


# -- the batch APIs (``_batches``) ------------------------------------------------------


def _add_batch_routes(app: web.Application, batches: SimBatches) -> None:
    app[_BATCHES] = batches
    app.router.add_post("/v1/files", _upload_file)
    app.router.add_get("/v1/files/{id}/content", _file_content)
    app.router.add_post("/v1/batches", _create_openai_batch)
    app.router.add_get("/v1/batches/{id}", _get_openai_batch)
    app.router.add_post("/v1/messages/batches", _create_anthropic_batch)
    app.router.add_get("/v1/messages/batches/{id}", _get_anthropic_batch)
    app.router.add_get("/v1/messages/batches/{id}/results", _anthropic_results)
    app.router.add_post("/upload/v1beta/files", _gemini_upload)
    app.router.add_get("/v1beta/batches/{id}", _gemini_batch)
    app.router.add_get("/download/v1beta/files/{target}", _gemini_download)
    # The SDK pointed at a base URL of its own asks there, without the /download prefix.
    app.router.add_get("/v1beta/files/{target}", _gemini_download)

    async def stop_batches(app: web.Application) -> None:
        await app[_BATCHES].aclose()

    app.on_cleanup.append(stop_batches)


def _json(response: SimResponse) -> web.Response:
    return web.json_response(response.body, status=response.status, headers=response.headers)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # answered 400


async def _upload_file(request: web.Request) -> web.Response:
    form = await request.post()
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, web.FileField):
        body = {"error": {"message": "file: a file is required", "type": "invalid_request_error"}}
        return web.json_response(body, status=400)
    data = upload.file.read()
    return _json(request.app[_BATCHES].upload(data, purpose=str(purpose), filename=upload.filename))


async def _file_content(request: web.Request) -> web.Response:
    data = request.app[_BATCHES].file_content(request.match_info["id"])
    if data is None:
        body = {"error": {"message": "No such File object", "type": "invalid_request_error"}}
        return web.json_response(body, status=404)
    return web.Response(body=data, content_type="application/octet-stream")


async def _create_openai_batch(request: web.Request) -> web.Response:
    return _json(request.app[_BATCHES].create_openai(await _json_body(request)))


async def _get_openai_batch(request: web.Request) -> web.Response:
    return _json(request.app[_BATCHES].get_openai(request.match_info["id"]))


async def _create_anthropic_batch(request: web.Request) -> web.Response:
    origin = str(request.url.origin())
    return _json(request.app[_BATCHES].create_anthropic(await _json_body(request), origin))


async def _get_anthropic_batch(request: web.Request) -> web.Response:
    return _json(request.app[_BATCHES].get_anthropic(request.match_info["id"], str(request.url.origin())))


async def _anthropic_results(request: web.Request) -> web.Response:
    data = request.app[_BATCHES].anthropic_results(request.match_info["id"])
    if data is None:
        body = {"type": "error", "error": {"type": "not_found_error", "message": "no results (yet)"}}
        return web.json_response(body, status=404)
    return web.Response(body=data, content_type="application/binary")


class SimServer:
    """The simulator listening on ``host:port`` (port 0: any free port) in this event loop.

    async with SimServer(SimConfig(seed=1)) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        assert server.stats()["requests"] == 1
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        engine: SimEngine | None = None,
    ) -> None:
        self.engine = engine or SimEngine(config)
        self.batches = SimBatches(self.engine)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        return _snapshot(self.engine, self.batches)

    async def start(self) -> None:
        runner = web.AppRunner(build_app(self.engine, self.batches), handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def aclose(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ThreadedServer:
    """A ``SimServer`` on its own event loop in a daemon thread (see ``run_in_thread``)."""

    def __init__(self, config: SimConfig | None, host: str, port: int) -> None:
        self._server = SimServer(config, host, port)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._final: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._run, name="llmbatch-sim", daemon=True)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def engine(self) -> SimEngine:
        return self._server.engine

    def stats(self) -> dict[str, Any]:
        """The counters, read on the server's loop so they are consistent (final once stopped)."""
        if self._final is not None:
            return self._final
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop)
        return future.result(timeout=10)

    def reset(self) -> None:
        asyncio.run_coroutine_threadsafe(self._reset(), self._loop).result(timeout=10)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    async def _snapshot(self) -> dict[str, Any]:
        return self._server.stats()

    async def _reset(self) -> None:
        self._server.engine.reset_stats()
        self._server.batches.reset_stats()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self._server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._server.aclose()
            self._final = self._server.stats()


@contextlib.contextmanager
def run_in_thread(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[ThreadedServer]:
    """Run the simulator in a background thread for synchronous callers.

    with run_in_thread(SimConfig(seed=1)) as server:
        CliRunner().invoke(main, ["run", ..., "--base-url", server.base_url])
        assert server.stats()["requests"] > 0
    """
    server = ThreadedServer(config, host, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until SIGINT or SIGTERM; prints one line with the address first."""
    asyncio.run(_serve(config, host, port))


async def _serve(config: SimConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    async with SimServer(config, host, port) as server:
        print(f"llmbatch sim listening on {server.base_url}", flush=True)
        sys.stdout.flush()
        await stop.wait()
