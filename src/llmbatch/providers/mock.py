"""``MockProvider(handler)``: a provider whose answers come from a function, as httpx's
``MockTransport`` — for testing code that runs llmbatch jobs, with no server and no network.

    >>> def handler(request: Request) -> Completion:
    ...     return reply(request, {key: {"label": "positive"} for key in items(request)})
    >>> provider = MockProvider(handler, capabilities=Capabilities())  # answers numbered packs

The handler gets every ``Request`` the runner sends and returns a ``Completion`` (or an
awaitable of one), or raises an llmbatch error (``RateLimited``, ``ServerError``...),
which the runner handles as it would a real provider's: retried, split, or the job stopped.

A ``Request`` carries rendered prompts, not items, so two helpers stand between a handler
and the pack layout (``_pack``), whichever pack format the job uses:

- ``items(request)``: ``{key: item text}``, in the order sent;
- ``reply(request, {key: answer})``: the completion a model answering those items writes,
  in the request's format (a JSON object, tool arguments, numbered lines, separated
  texts, or one plain answer). Each answer is the task's whole answer: a lone field is
  packed as its value alone, as the packers do. A key left out is an item the model
  skipped; a key not in ``items`` is one it made up — both are the job's to catch.

They read and write what the packers' own constants lay out; ``tests/providers/test_mock.py``
renders and parses every format through them, so the two cannot drift apart unseen.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Final

from .._pack import SCHEMA_LINE, SEPARATOR, SINGLE_FIELD, SINGLE_SCHEMA_RULE, TEXTS_HEADER
from .._pack.tokens import count_tokens
from .._types import Capabilities, Completion, Request, Usage
from .base import Param, Provider

__all__ = ["PLAIN", "Handler", "MockProvider", "items", "reply"]

STRUCTURED: Final = Capabilities(json_schema=True)
"""A mock's capabilities unless a test picks others: structured output, as most providers."""

Handler = Callable[[Request], Completion | Awaitable[Completion]]
"""What answers a ``MockProvider``'s requests: sync or async."""

PLAIN: Final = ""
"""The key ``items`` gives the one record of a plain request: a pack of one is sent as the
request a one-record script makes, which names no key."""

_PLAIN_SCHEMA_NAME: Final = "answer"
"""The schema name ``Single.render`` gives a plain request (packs keep ``Request``'s default)."""
_TEXTS_START: Final = TEXTS_HEADER.partition("{")[0]


class MockProvider(Provider):
    """A provider that calls ``handler(request)`` for every request, capabilities as chosen.

    >>> provider = MockProvider(lambda request: reply(request, {k: "yes" for k in items(request)}))
    >>> job = await llmbatch.run_job(spec, provider)  # doctest: +SKIP
    >>> provider.requests[0].mode                      # doctest: +SKIP
    'json_schema'

    A real provider's ``Capabilities`` are fixed by its class; a mock's are each test's
    choice, a keyword, so a test picks them without subclassing: the default has structured
    output (the json pack); ``Capabilities()`` makes the job use the numbered pack,
    ``Capabilities(tools=True)`` the tools pack, ``Capabilities(billed=False)`` a job that
    costs nothing. ``requests`` holds every request sent, in order. It is not a
    ``--provider`` choice: a handler is code, not a command-line option.
    """

    name: ClassVar[str] = "mock"

    def __init__(
        self,
        handler: Handler,
        *,
        model: str = "mock-1",
        capabilities: Capabilities = STRUCTURED,
        accepted_params: Mapping[str, Param] | None = None,
    ) -> None:
        self.handler = handler
        self.model = model
        self.requests: list[Request] = []
        self.capabilities = capabilities
        # A real provider's accepted params are its class's; a mock's shadow them here.
        vars(self)["accepted_params"] = dict(accepted_params or {})

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        result = self.handler(request)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Completion):
            raise TypeError(
                f"the MockProvider handler returned {type(result).__name__}, not a Completion: "
                "return reply(request, answers) or a Completion(...)"
            )
        return result


def items(request: Request) -> dict[str, str]:
    """``{key: item text}`` of a request, in the order sent; a plain request (a pack of one)
    is ``{PLAIN: its text}``.

    >>> items(request)  # doctest: +SKIP
    {'k1': 'Great kettle: boils fast', 'k2': 'Broken on arrival: cracked'}

    The keys are what the model is asked to answer under: ``k1``..``kN`` by place in json and
    tools packs, the job-unique ``Item.key`` in numbered packs; the separator pack is answered
    by position, so its keys are places too.
    """
    if _is_plain(request):
        return {PLAIN: request.user}
    header, _, body = request.user.partition("\n")
    # Every item's text is one JSON-quoted line (``_pack._codec.quote``): no line break or
    # separator inside a record can split it.
    if header.startswith(_TEXTS_START):
        texts = body.split(f"\n{SEPARATOR}\n")
        return {f"k{place}": json.loads(text) for place, text in enumerate(texts, 1)}
    lines = (line.partition(": ") for line in body.split("\n"))
    return {key: json.loads(text) for key, _, text in lines}


def reply(
    request: Request,
    answers: Mapping[str, Any],
    *,
    finish_reason: str = "stop",
    usage: Usage | None = None,
    latency: float = 0.0,
) -> Completion:
    """The completion of a model that answered ``answers`` (``{key: the task's answer}``).

    >>> reply(request, {"k1": {"label": "positive"}, "k2": {"label": "negative"}}).content
    '{"k1": "positive", "k2": "negative"}'

    (a task whose answer is the one field ``label`` is packed by value). ``usage`` defaults
    to the request's estimated prompt tokens and the tokens of the content written.
    """
    content = _content(request, answers)
    if usage is None:
        usage = Usage(request.est_prompt_tokens, count_tokens(content))
    return Completion(content, finish_reason, usage, latency)


def _is_plain(request: Request) -> bool:
    return request.schema_name == _PLAIN_SCHEMA_NAME


def _content(request: Request, answers: Mapping[str, Any]) -> str:
    if _is_plain(request):
        return _plain_content(request, answers)
    if request.user.startswith(_TEXTS_START):
        return f"\n{SEPARATOR}\n".join(str(answer) for answer in answers.values())
    if request.schema is not None:  # json and tools: one object, the pack schema's
        schema = request.schema["$defs"]["answer"]
        return json.dumps({key: _packed(schema, answer) for key, answer in answers.items()})
    # numbered: the prompt states the answer schema, last (a text task has none).
    if SCHEMA_LINE in request.system:
        schema = json.loads(request.system.rpartition(SCHEMA_LINE)[2])
        answers = {key: _packed(schema, answer) for key, answer in answers.items()}
    return "\n".join(f"{key}: {json.dumps(answer)}" for key, answer in answers.items())


def _plain_content(request: Request, answers: Mapping[str, Any]) -> str:
    if PLAIN not in answers:
        return ""  # a model that answered nothing
    answer = answers[PLAIN]
    if request.schema is not None:
        # A task whose answer is not an object is asked for it in an ``answer`` field
        # (strict modes need an object root: ``_pack.schema.single_schema``).
        fields = list(request.schema.get("properties", {}))
        wrapped = isinstance(answer, dict) and set(answer) <= {SINGLE_FIELD}
        if fields == [SINGLE_FIELD] and not wrapped:
            answer = {SINGLE_FIELD: answer}
        return json.dumps(answer)
    if SINGLE_SCHEMA_RULE in request.system:  # a structured task without structured output
        return json.dumps(answer)
    return answer if isinstance(answer, str) else json.dumps(answer)  # a text task


def _packed(schema: Mapping[str, Any], answer: Any) -> Any:
    """``answer`` as a pack holds it: a lone field's value alone (``_pack.schema.lone_field``).

    ``schema`` is what one item's answer looks like in the pack: when it names the answer's
    one field, the answer is the task's own object; otherwise that field is the lone one.
    """
    if isinstance(answer, dict) and len(answer) == 1:
        (field,) = answer
        if field not in schema.get("properties", {}):
            return answer[field]
    return answer
