"""A gate in front of the simulator, on 127.0.0.1: passes requests through, or turns hostile.

The user-path tests put it between the CLI and the simulator, then switch it:

- ``pass``: forward to the simulator, answer what it answered;
- ``html``: 200 with a proxy's HTML login page;
- ``unauthorized``: 401 as OpenAI sends it (the job must stop, resumable);
- ``slow``: 200 headers, then one byte every half second (a stalled body);
- ``down()`` / ``up()``: nothing listens on the port (connection refused), then it does again,
  on the same port, so the job's endpoint is unchanged.

``passed`` counts the requests that reached the simulator.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["Gate"]

HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Proxy login</body></html>"


class Gate:
    """``Gate(upstream_base_url)``; ``start()``, ``base_url``, ``mode = ...``, ``stop()``."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port
        self.mode = "pass"
        self.passed = 0
        self.seen = 0
        self._switch: tuple[int, str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- life ------------------------------------------------------------------------

    def start(self) -> Gate:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._up(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._down(close_session=True), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def down(self) -> None:
        """Stop listening: connections to the port are refused."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._down(), self._loop).result(10)

    def up(self) -> None:
        """Listen again, on the same port."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._up(), self._loop).result(10)

    async def _up(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _down(self, close_session: bool = False) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if close_session and self._session is not None:
            await self._session.close()
            self._session = None

    def switch(self, after: int, mode: str) -> None:
        """Once ``after`` requests have been seen, answer every later one in ``mode``."""
        self._switch = (after, mode)

    # -- requests ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._switch is not None and self.seen >= self._switch[0]:
            self.mode, self._switch = self._switch[1], None
        self.seen += 1
        mode = self.mode
        if mode == "html":
            return web.Response(body=HTML_PAGE, content_type="text/html")
        if mode == "unauthorized":
            error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            return web.json_response(error, status=401)
        if mode == "slow":
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await response.prepare(request)
            for byte in b'{"id": "chatcmpl-slow", "choices": []}' * 100:
                await response.write(bytes([byte]))
                await asyncio.sleep(0.5)
            return response
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers: dict[str, Any] = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        url = self.upstream.removesuffix("/v1") + request.rel_url.path_qs
        async with self._session.request(request.method, url, data=body, headers=headers) as upstream:
            payload = await upstream.read()
            self.passed += 1
            keep = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower()
                not in ("content-length", "transfer-encoding", "content-encoding", "date", "server")
            }
            return web.Response(body=payload, status=upstream.status, headers=keep)
