"""What a job will cost before it runs: tokens counted over the data, no API call.

Prompts are rendered exactly as the run would render them (same pack format,
same token estimate), so input tokens match a run up to the provider's own
tokenizer. Answers do not exist yet: their size is modelled from the schema
(a typical value per field) or, for free text, from the input's length.

Each strategy is priced three ways:

    low       the shortest answers the schema allows, no retry, the cache read as expected
    expected  typical answers, no retry, the cache read as the provider's rule says
    high      every answer at its answer budget (``max_tokens``), RETRY_ALLOWANCE of the
              requests sent twice, no cache read (providers cache best-effort), and flex
              answered at the full price (its stragglers fall back to sync)

and timed two ways at the account's limits (``--rpm``/``--tpm``, else DEFAULT_RPM and
DEFAULT_TPM): expected, what the limits allow for the tokens a run charges; at most, with
the margins of each way of sending (flex is slower and sometimes refused; a batch has
the provider's whole completion window). ``cheapest_within`` picks the cheapest strategy
whose longest time meets a deadline.

Why one module: it is one model of a run, counted without one. Rendering the packs,
modelling the answers, and pricing and timing each strategy share the same rendered
requests and assumptions, and change together when the runner does.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .._exceptions import ItemError
from .._io import Record
from .._pack import PackFormat, answer_schema, shared_prefix_tokens
from .._pack.tokens import count_tokens
from .._pricing import Price
from .._task import Task, canonical_json
from .._types import Item, Request, Usage

__all__ = [
    "DEFAULT_RPM",
    "DEFAULT_TPM",
    "Estimate",
    "StrategyEstimate",
    "cheapest_within",
    "estimate_job",
    "shortest_answer",
    "typical_answer",
]

CACHE_MIN_PREFIX = 1024
"""Providers cache a prompt prefix only from this many tokens on (OpenAI: 1,024)."""
CACHE_STEP = 128
"""OpenAI caches a prefix in steps of this many tokens."""
RETRY_ALLOWANCE = 0.05
"""The share of requests the high cost sends twice (failed lines, missing or invalid answers)."""
DEFAULT_RPM = 500.0
DEFAULT_TPM = 200_000.0
"""The limits the times assume when none is given: a low tier (OpenAI's first for a small model)."""
SYNC_MARGIN = 1.25
"""A sync run's longest time over the limits' bound: the ramp, retries and the tail."""
FLEX_MARGIN = 2.0
"""Flex's: its answers queue behind the default tier's and some are refused for a while."""
FLEX_FALLBACK_MINUTES = 10.0
"""``--flex-deadline``'s default: what a straggler may wait before it is sent at the default tier."""
DEFAULT_ESCALATION = 0.10
"""The share of records a cascade row expects to go on to each next model (``--escalation``):
those still missing or invalid after the first model's attempts, and, with ``[escalate]``,
those answered below its confidence threshold; no API call can tell it before a run."""
BATCH_EXPECTED_MINUTES = 60.0
BATCH_WINDOW_MINUTES = 24 * 60.0
"""A batch: most end within an hour (Anthropic's docs); the provider promises its 24-hour window."""


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
    """The expected cost (USD)."""
    records: int
    mode: str = "sync"
    """How it is sent: ``sync``, ``flex`` or ``batch`` (``--mode``)."""
    low: float | None = None
    high: float | None = None
    """The cost's range (the module's docstring says how each end is taken)."""
    cascade: bool = False
    """Through the task's models in turn (a run with no ``--model``)."""

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

    def times(self, rpm: float | None, tpm: float | None) -> tuple[float, float]:
        """(expected, at most) minutes at these limits (DEFAULT_RPM and DEFAULT_TPM when neither
        is known; a limit not given does not bind)."""
        if not (rpm or tpm):
            rpm, tpm = DEFAULT_RPM, DEFAULT_TPM
        bound = self.minutes(rpm, tpm) or 0.0
        if self.mode == "batch":
            return BATCH_EXPECTED_MINUTES, BATCH_WINDOW_MINUTES
        if self.mode == "flex":
            return bound * FLEX_MARGIN, bound * FLEX_MARGIN * SYNC_MARGIN + FLEX_FALLBACK_MINUTES
        return bound, bound * SYNC_MARGIN


def cheapest_within(
    strategies: Iterable[StrategyEstimate], minutes: float, rpm: float | None, tpm: float | None
) -> StrategyEstimate | None:
    """The strategy of least expected cost whose longest time is within ``minutes`` (ties: the
    faster); None when none is, or none has a known cost."""
    fitting = [s for s in strategies if s.cost is not None and s.records and s.times(rpm, tpm)[1] <= minutes]
    return min(fitting, key=lambda s: (s.cost, s.times(rpm, tpm)[1]), default=None)


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
    return _model_answer(schema, shortest=False)


def shortest_answer(schema: dict[str, Any]) -> Any:
    """The shortest answer a schema allows (every property present, as strict output has it)."""
    return _model_answer(schema, shortest=True)


def _model_answer(schema: dict[str, Any], *, shortest: bool) -> Any:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "enum" in schema:
        values = [v for v in schema["enum"] if v is not None]
        pick = min if shortest else max
        return pick(values, key=lambda v: len(str(v))) if values else None
    if "object" in kinds or "properties" in schema:
        return {k: _model_answer(v, shortest=shortest) for k, v in schema.get("properties", {}).items()}
    if "array" in kinds:
        count = int(schema.get("minItems", 0)) if shortest else 2
        return [_model_answer(schema.get("items", {}), shortest=shortest)] * count
    if "number" in kinds:
        return 0 if shortest else 0.75
    if "integer" in kinds:
        return 0 if shortest else 42
    if "boolean" in kinds:
        return True
    if "string" in kinds:
        return "x" * int(schema.get("minLength", 0)) if shortest else "a short answer"
    return None


def _answer_tokens(task: Task, text: str, typical: int) -> int:
    if task.is_text:
        # Translations and rewrites are about as long as their input.
        return min(task.answer_budget, max(1, count_tokens(text)))
    return typical


def _answers(task: Task, items: list[Item], *, packed: bool, shortest: bool = False) -> list[int]:
    """Answer tokens per item: in a pack (the packed answer, ``answer_schema``, JSON-quoted
    when text, with its key and a separator ``"k17": … ,``) or alone (the task's own answer,
    as it is: a pack of one is a plain request). ``shortest``: the shortest the schema
    allows (a text answer of one token) instead of a typical one."""
    model = shortest_answer if shortest else typical_answer
    if not packed:
        typical = count_tokens(canonical_json(model(task.item_schema)))
        return [
            1 if shortest and task.is_text else _answer_tokens(task, item.text, typical) for item in items
        ]
    typical = count_tokens(canonical_json(model(answer_schema(task))))
    quotes = 2 if task.is_text else 0
    return [
        (1 if shortest and task.is_text else _answer_tokens(task, item.text, typical))
        + quotes
        + count_tokens(f'"{item.key}":,')
        for item in items
    ]


def estimate_job(
    task: Task,
    records: Iterable[Record],
    packer: PackFormat,
    *,
    batch_size: int,
    price: Price | None,
    sample: int | None = None,
    cascade: Sequence[Price | None] = (),
    escalation: float = DEFAULT_ESCALATION,
) -> Estimate:
    """Estimate one request per record, packed, packed + prompt caching, the same + flex
    (``--mode flex``), packed + batch API; and, given the prices of a task's cascade
    (``cascade``: one per model of ``task.models``, cheapest first), packed through it with
    ``escalation`` of the records going on to each next model."""
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
    packed = batch_size > 1
    alone = (
        task,
        packer,
        items,
        (_answers(task, items, packed=False), _answers(task, items, packed=False, shortest=True)),
        price,
        n,
    )
    common = (
        task,
        packer,
        items,
        (_answers(task, items, packed=packed), _answers(task, items, packed=packed, shortest=True)),
        price,
        n,
    )
    strategies = [
        _strategy("1 per request", *alone, size=1),
        _strategy(f"packed {batch_size}", *common, size=batch_size),
        _strategy(f"packed {batch_size} + caching", *common, size=batch_size, caching=True),
        # Flex is priced at batch rates and OpenAI's cache discount stacks on it; its times
        # allow for answers slower than sync and for some refused a while.
        _strategy(
            f"packed {batch_size} + caching + flex", *common, size=batch_size, caching=True, mode="flex"
        ),
        _strategy(f"packed {batch_size} + batch API", *common, size=batch_size, mode="batch"),
    ]
    if len(cascade) >= 2 and len(cascade) == len(task.models):
        steps = [_strategy("", *common[:4], step, n, size=batch_size) for step in cascade]
        strategies.append(
            _cascade(f"packed {batch_size}, cascade {' → '.join(task.models)}", steps, escalation)
        )
    return Estimate(total, len(items), skipped, strategies)


def _cascade(name: str, steps: list[StrategyEstimate], escalation: float) -> StrategyEstimate:
    """A cascade's row: every record through the first model, ``escalation`` of them (of those
    before) through each next one; low: none go on; high: every record through every model."""
    shares = [escalation**i for i in range(len(steps))]

    def total(values: list[float | None], weights: list[float]) -> float | None:
        if any(v is None for v in values):
            return None
        return sum((v or 0.0) * w for v, w in zip(values, weights, strict=True))

    first = steps[0]
    return StrategyEstimate(
        name=name,
        batch_size=first.batch_size,
        requests=round(sum(s.requests * w for s, w in zip(steps, shares, strict=True))),
        input_tokens=round(sum(s.input_tokens * w for s, w in zip(steps, shares, strict=True))),
        cached_tokens=0,
        output_tokens=round(sum(s.output_tokens * w for s, w in zip(steps, shares, strict=True))),
        charged_tokens=round(sum(s.charged_tokens * w for s, w in zip(steps, shares, strict=True))),
        cost=total([s.cost for s in steps], shares),
        records=first.records,
        low=first.low,
        high=total([s.high for s in steps], [1.0] * len(steps)),
        cascade=True,
    )


def _cacheable_tokens(request: Request) -> int:
    """What OpenAI's automatic cache reads of ``request`` once a request with its schema was sent.

    The shared prefix is the pack schema (one per pack size), then the system message;
    it is cached from ``CACHE_MIN_PREFIX`` tokens on, in ``CACHE_STEP`` steps. Anthropic
    caches the same prefix exactly, but charges its first write at 1.25× input.
    """
    prefix = shared_prefix_tokens(request)
    return prefix // CACHE_STEP * CACHE_STEP if prefix >= CACHE_MIN_PREFIX else 0


MAX_SAMPLE_PACKS = 200
T = TypeVar("T")


def _packs(
    items: list[Item], answers: list[T], size: int, n: int
) -> tuple[list[list[tuple[Item, T]]], float]:
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
    answers: tuple[list[int], list[int]],
    price: Price | None,
    n: int,
    *,
    size: int,
    caching: bool = False,
    mode: str = "sync",
) -> StrategyEstimate:
    """One strategy's tokens and costs. ``answers``: typical and shortest answer tokens per item."""
    requests = input_tokens = output_tokens = shortest = budget = charged = cached = missed = 0
    typical, least = answers
    packs, scale = _packs(items, list(zip(typical, least, strict=True)), size, n)
    schemas_seen: set[int | None] = set()
    for chunk in packs:
        request = packer.render(task, [item for item, _ in chunk])
        requests += 1
        input_tokens += request.est_prompt_tokens
        output_tokens += sum(tokens for _, (tokens, _) in chunk) + 1
        shortest += sum(tokens for _, (_, tokens) in chunk) + 1
        budget += request.max_tokens
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
    discounted = mode != "sync"
    low = high = None
    if price is not None:
        low = price.cost(
            dataclasses.replace(usage, completion_tokens=round(shortest * scale)), batch=discounted
        )
        worst = Usage(
            prompt_tokens=round(input_tokens * scale * (1 + RETRY_ALLOWANCE)),
            completion_tokens=round(budget * scale * (1 + RETRY_ALLOWANCE)),
        )
        high = price.cost(worst, batch=mode == "batch")
    return StrategyEstimate(
        name=name,
        batch_size=size,
        requests=round(requests * scale),
        input_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        output_tokens=usage.completion_tokens,
        charged_tokens=round(charged * scale),
        cost=None if price is None else price.cost(usage, batch=discounted),
        records=n,
        mode=mode,
        low=low,
        high=high,
    )
