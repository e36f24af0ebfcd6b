"""What a job will cost before it runs: tokens counted over the data, no API call.

Prompts are rendered exactly as the run would render them (same pack format,
same token estimate), so input tokens match a run up to the provider's own
tokenizer. Answers do not exist yet: their size is modelled from the schema
(a typical value per field) or, for free text, from the input's length.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._exceptions import ItemError
from .._io import Record
from .._pack import PackFormat, answer_schema, shared_prefix_tokens
from .._pack.tokens import count_tokens
from .._pricing import Price
from .._task import Task, canonical_json
from .._types import Item, Request, Usage

__all__ = ["Estimate", "StrategyEstimate", "estimate_job", "typical_answer"]

CACHE_MIN_PREFIX = 1024
"""Providers cache a prompt prefix only from this many tokens on (OpenAI: 1,024)."""
CACHE_STEP = 128
"""OpenAI caches a prefix in steps of this many tokens."""


@dataclass(frozen=True, slots=True)
class StrategyEstimate:
    name: str
    batch_size: int
    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    charged_tokens: int
    """prompt + max_tokens over all requests: what a TPM limit counts."""
    cost: float | None
    records: int

    @property
    def cost_per_record(self) -> float | None:
        return None if self.cost is None or not self.records else self.cost / self.records

    def minutes(self, rpm: float | None, tpm: float | None) -> float | None:
        """The least time the rate limits allow (None when no limit is known)."""
        bounds = []
        if rpm:
            bounds.append(self.requests / rpm)
        if tpm:
            bounds.append(self.charged_tokens / tpm)
        return max(bounds) if bounds else None


@dataclass(frozen=True, slots=True)
class Estimate:
    records: int
    sampled: int
    skipped: int
    """Records that could not be read or rendered (they would fail, costing nothing)."""
    strategies: list[StrategyEstimate]

    @property
    def extrapolated(self) -> bool:
        return self.sampled < self.records


def typical_answer(schema: dict[str, Any]) -> Any:
    """A representative answer for a schema: enough to count its tokens."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "enum" in schema:
        values = [v for v in schema["enum"] if v is not None]
        return max(values, key=lambda v: len(str(v))) if values else None
    if "object" in kinds or "properties" in schema:
        return {k: typical_answer(v) for k, v in schema.get("properties", {}).items()}
    if "array" in kinds:
        return [typical_answer(schema.get("items", {}))] * 2
    if "number" in kinds:
        return 0.75
    if "integer" in kinds:
        return 42
    if "boolean" in kinds:
        return True
    if "string" in kinds:
        return "a short answer"
    return None


def _answer_tokens(task: Task, text: str, typical: int) -> int:
    if task.is_text:
        # Translations and rewrites are about as long as their input.
        return min(task.answer_budget, max(1, count_tokens(text)))
    return typical


def _answers(task: Task, items: list[Item], *, packed: bool) -> list[int]:
    """Answer tokens per item: in a pack (the packed answer, ``answer_schema``, JSON-quoted
    when text, with its key and a separator ``"k17": … ,``) or alone (the task's own answer,
    as it is: a pack of one is a plain request)."""
    if not packed:
        typical = count_tokens(canonical_json(typical_answer(task.item_schema)))
        return [_answer_tokens(task, item.text, typical) for item in items]
    typical = count_tokens(canonical_json(typical_answer(answer_schema(task))))
    quotes = 2 if task.is_text else 0
    return [
        _answer_tokens(task, item.text, typical) + quotes + count_tokens(f'"{item.key}":,') for item in items
    ]


def estimate_job(
    task: Task,
    records: Iterable[Record],
    packer: PackFormat,
    *,
    batch_size: int,
    price: Price | None,
    sample: int | None = None,
) -> Estimate:
    """Estimate one request per record, packed, packed + prompt caching, the same + flex
    (``--mode flex``), packed + batch API."""
    items: list[Item] = []
    total = skipped = 0
    for record in records:
        total += 1
        if sample is not None and len(items) >= sample:
            continue
        if record.fields is None:
            skipped += 1
            continue
        try:
            items.append(Item(record.index, str(record.index), task.render_input(record.fields)))
        except ItemError:  # it would fail in a run too, costing nothing
            skipped += 1
    n = total - skipped if sample is not None else len(items)
    alone = (task, packer, items, _answers(task, items, packed=False), price, n)
    common = (task, packer, items, _answers(task, items, packed=batch_size > 1), price, n)
    strategies = [
        _strategy("1 per request", *alone, size=1),
        _strategy(f"packed {batch_size}", *common, size=batch_size),
        _strategy(f"packed {batch_size} + caching", *common, size=batch_size, caching=True),
        # Flex is priced at batch rates and OpenAI's cache discount stacks on it; the time
        # shown is the sync one at the limits (flex answers are slower and sometimes refused).
        _strategy(
            f"packed {batch_size} + caching + flex", *common, size=batch_size, caching=True, batch_api=True
        ),
        _strategy(f"packed {batch_size} + batch API", *common, size=batch_size, batch_api=True),
    ]
    return Estimate(total, len(items), skipped, strategies)


def _cacheable_tokens(request: Request) -> int:
    """What OpenAI's automatic cache reads of ``request`` once a request with its schema was sent.

    The shared prefix is the pack schema (one per pack size), then the system message;
    it is cached from ``CACHE_MIN_PREFIX`` tokens on, in ``CACHE_STEP`` steps. Anthropic
    caches the same prefix exactly, but charges its first write at 1.25× input.
    """
    prefix = shared_prefix_tokens(request)
    return prefix // CACHE_STEP * CACHE_STEP if prefix >= CACHE_MIN_PREFIX else 0


MAX_SAMPLE_PACKS = 200


def _packs(
    items: list[Item], answers: list[int], size: int, n: int
) -> tuple[list[list[tuple[Item, int]]], float]:
    """The packs to render for ``n`` records, and the factor that scales them up to all ``n``.

    With every record at hand, the real packs. With a sample, sample records are
    reused cyclically to fill full packs — as many as the run would send, or at
    most ``MAX_SAMPLE_PACKS`` — so the fixed part of each request is counted
    per request, not per sampled record.
    """
    pairs = list(zip(items, answers, strict=True))
    if not pairs:
        return [], 1.0
    if n == len(pairs):
        return [pairs[i : i + size] for i in range(0, len(pairs), size)], 1.0
    wanted = math.ceil(n / size)
    rendered = min(wanted, MAX_SAMPLE_PACKS)
    last = n - (wanted - 1) * size
    cycle = itertools.cycle(pairs)
    packs = [list(itertools.islice(cycle, last if i == wanted - 1 else size)) for i in range(rendered)]
    return packs, wanted / rendered


def _strategy(
    name: str,
    task: Task,
    packer: PackFormat,
    items: list[Item],
    answers: list[int],
    price: Price | None,
    n: int,
    *,
    size: int,
    caching: bool = False,
    batch_api: bool = False,
) -> StrategyEstimate:
    requests = input_tokens = output_tokens = charged = cached = missed = 0
    packs, scale = _packs(items, answers, size, n)
    schemas_seen: set[int | None] = set()
    for chunk in packs:
        request = packer.render(task, [item for item, _ in chunk])
        requests += 1
        input_tokens += request.est_prompt_tokens
        output_tokens += sum(tokens for _, tokens in chunk) + 1
        charged += request.est_prompt_tokens + request.max_tokens
        if caching:
            # Every request reads the cache but the first with its schema (one per pack
            # size; none without a schema): those misses happen once, however many
            # requests the sampled packs stand for.
            readable = _cacheable_tokens(request)
            cached += readable
            schema = len(chunk) if request.schema is not None else None
            if schema not in schemas_seen:
                missed += readable
                schemas_seen.add(schema)
    usage = Usage(
        prompt_tokens=round(input_tokens * scale),
        completion_tokens=round(output_tokens * scale),
        cached_tokens=max(0, round(cached * scale) - missed),
    )
    return StrategyEstimate(
        name=name,
        batch_size=size,
        requests=round(requests * scale),
        input_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        output_tokens=usage.completion_tokens,
        charged_tokens=round(charged * scale),
        cost=None if price is None else price.cost(usage, batch=batch_api),
        records=n,
    )
