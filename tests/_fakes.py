"""In-process providers for runner tests: no server, no network."""

from __future__ import annotations

import http.server
import json

from llmbatch import Completion, Request
from llmbatch.providers.base import Provider


class KeyedFake(Provider):
    """A json-pack provider that remembers the item texts of every request; subclasses answer.

    ``answer`` gets the pack's items as {key in the request: item text}, in the order sent.
    """

    supports_json_schema = True

    def __init__(self) -> None:
        self.model = "fake"
        self.sent: list[list[str]] = []

    async def complete(self, request: Request) -> Completion:
        assert request.schema is not None
        keys = list(request.schema["required"])
        # The user message: a header line, then one ``key: "JSON-quoted text"`` line per item.
        lines = request.user.splitlines()[1:]
        assert [line.partition(": ")[0] for line in lines] == keys
        texts = [json.loads(line.partition(": ")[2]) for line in lines]
        self.sent.append(texts)
        return await self.answer(dict(zip(keys, texts, strict=True)), request)

    async def answer(self, items: dict[str, str], request: Request) -> Completion:
        raise NotImplementedError


class QuietJSONHandler(http.server.BaseHTTPRequestHandler):
    """A test server's handler base: answers JSON in one call, logs nothing."""

    def reply_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass
