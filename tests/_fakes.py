"""In-process providers for runner tests: no server, no network."""

from __future__ import annotations

import http.server
import json
from typing import Any

from llmbatch import Capabilities, Completion, Request
from llmbatch.providers import mock
from llmbatch.providers.base import Provider

PLAIN = mock.PLAIN
"""The key ``request_texts`` gives the one record of a plain request (a pack of one)."""


def is_packed(request: Request) -> bool:
    return list(mock.items(request)) != [PLAIN]


def request_texts(request: Request) -> dict[str, str]:
    """{key in the request: item text}, in the order sent; a plain request is {PLAIN: its text}."""
    return mock.items(request)


def reply_content(request: Request, answers: dict[str, Any]) -> str:
    """What a model writes for ``answers`` (each a whole answer of the task, by key), in the
    request's pack format (``llmbatch.providers.mock.reply``)."""
    return mock.reply(request, answers).content


class KeyedFake(Provider):
    """A json-pack provider that remembers the item texts of every request; subclasses answer.

    ``answer`` gets the pack's items as {key in the request: item text}, in the order sent
    (a plain request, a pack of one, as {PLAIN: text}); ``reply_content`` writes the answer.
    """

    capabilities = Capabilities(json_schema=True)

    def __init__(self) -> None:
        self.model = "fake"
        self.sent: list[list[str]] = []

    async def complete(self, request: Request) -> Completion:
        items = request_texts(request)
        if is_packed(request):
            assert request.schema is not None
            assert list(items) == list(request.schema["required"])
        self.sent.append(list(items.values()))
        return await self.answer(items, request)

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
