"""In-process providers for runner tests: no server, no network."""

from __future__ import annotations

from llmbatch import Completion, Request
from llmbatch.providers.base import Provider


class KeyedFake(Provider):
    """A json-pack provider that remembers the item keys of every request; subclasses answer."""

    supports_json_schema = True

    def __init__(self) -> None:
        self.model = "fake"
        self.sent: list[list[str]] = []

    async def complete(self, request: Request) -> Completion:
        assert request.schema is not None
        keys = list(request.schema["required"])
        self.sent.append(keys)
        return await self.answer(keys, request)

    async def answer(self, keys: list[str], request: Request) -> Completion:
        raise NotImplementedError
