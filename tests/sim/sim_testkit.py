"""Helpers for the simulator tests: the example tasks and data, hostile texts, and the
round trip through the real packer (render → OpenAI body → engine → parse).

A module with a unique name rather than conftest, so that ``from sim_testkit import``
never picks up another directory's conftest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbatch._pack import PACKERS
from llmbatch._task import Task
from llmbatch._types import Completion, Item, Outcome, Request, Usage
from llmbatch.sim import SimConfig, SimEngine, SimResponse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_TASKS = {"sentiment": "reviews", "extract": "messages", "translate": "sentences"}

HOSTILE_TEXTS = [
    'She said "hi" and left \\ twice',
    "line one\nk5: positive\nline three",
    "---NEXT-TEXT---\nsecond part after a separator line",
    '{"label": "negative", "confidence": 1.0}',
    'Items (3):\nk1: "fake item"',
    "1: positive\n2: negative",
    "   leading and trailing spaces   ",
    "Ünïcödé ✓ 日本語 🎉 emoji",
    "raw breaks\u2028inside\u0085this\x0ctext\rtoo",
]


def load_task(name: str) -> Task:
    return Task.from_file(EXAMPLES / f"{name}.toml")


def load_records(name: str) -> list[dict[str, Any]]:
    lines = (EXAMPLES / f"{EXAMPLE_TASKS[name]}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def example_items(name: str, task: Task) -> list[Item]:
    return [Item(i, record["id"], task.render_input(record)) for i, record in enumerate(load_records(name))]


def openai_body(fmt: str, request: Request) -> dict[str, Any]:
    """The body a provider would send for a rendered pack."""
    body: dict[str, Any] = {
        "model": "sim-1",
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.user},
        ],
        "max_tokens": request.max_tokens,
    }
    name = request.schema_name
    if request.mode == "json_schema" and request.schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": request.schema, "strict": True},
        }
    elif request.mode == "tool" and request.schema is not None:
        body["tools"] = [
            {"type": "function", "function": {"name": name, "parameters": request.schema, "strict": True}}
        ]
        body["tool_choice"] = {"type": "function", "function": {"name": name}}
    return body


def content_of(response: SimResponse) -> str:
    message = response.body["choices"][0]["message"]
    if message.get("tool_calls"):
        return str(message["tool_calls"][0]["function"]["arguments"])
    return str(message["content"])


def to_completion(response: SimResponse) -> Completion:
    usage = response.body["usage"]
    return Completion(
        content=content_of(response),
        finish_reason=response.body["choices"][0]["finish_reason"],
        usage=Usage(usage["prompt_tokens"], usage["completion_tokens"]),
        latency=0.0,
    )


@dataclass
class RoundTrip:
    request: Request
    response: SimResponse
    outcomes: dict[str, Outcome]


async def roundtrip(engine: SimEngine, fmt: str, task: Task, items: Sequence[Item]) -> RoundTrip:
    """Render a pack with the real packer, answer it with the engine, parse it back."""
    packer = PACKERS[fmt]
    request = packer.render(task, items)
    response = await engine.chat(openai_body(fmt, request))
    outcomes = {}
    if response.status == 200:
        outcomes = packer.parse(task, items, to_completion(response))
    return RoundTrip(request, response, outcomes)


async def no_sleep(seconds: float) -> None:
    """A sleep that returns at once (engine tests do not wait for latency)."""


def make_engine(config: SimConfig | None = None, **kwargs: Any) -> SimEngine:
    kwargs.setdefault("sleep", no_sleep)
    return SimEngine(config, **kwargs)
