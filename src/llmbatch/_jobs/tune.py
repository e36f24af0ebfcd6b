"""``tune``: measure on a sample of the user's own data how large a pack can be before answers change.

A seeded sample is run once per pack size, each as a job of its own (a fresh
store in a temporary directory, no result cache, the size fixed), with size 1 —
one record per request — as the reference. For every size it reports first-try
success, agreement with the size-1 answers (``quality``), the answers' length
relative to size 1, items/min, tokens and cost per item, and it recommends the
size with the best items/min × first-try success among those whose agreement is
at least the floor. ``save_tuned`` writes that size next to the task file, where
``run --batch-size auto`` reads it as its ceiling (``load_tuned_ceiling``).

    report = await tune(task, records, lambda: create_provider("openai", config), sizes=[1, 5, 10])
    report.recommended  # e.g. 10

What tune will spend is known before it starts: ``estimate_tune_cost`` renders
every pack it will send and prices its tokens, without calling the API.
"""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import BudgetReached, ItemError, UsageError
from .._options import RunOptions
from .._pack import choose_packer
from .._pricing import Price, PriceTable
from .._store.job import read_results
from .._task import Task
from .._types import JSON, IdValue, Item, Usage
from ..providers.base import Provider
from .job import JobSpec, run_job
from .quality import Comparison, SizeScore, compare, recommend

__all__ = [
    "DEFAULT_SIZES",
    "SizeResult",
    "TuneEstimate",
    "TuneReport",
    "estimate_tune_cost",
    "load_tuned_ceiling",
    "reservoir_sample",
    "sample_records",
    "save_tuned",
    "tune",
    "tuned_path",
]

DEFAULT_SIZES = (1, 5, 10, 20, 50)
DEFAULT_SAMPLE = 200
TUNED_VERSION = 1

ProviderFactory = Callable[[], Provider]


@dataclass(frozen=True, slots=True)
class SizeResult:
    """What one pack size did on the sample."""

    size: int
    records: int
    ok: int
    first_try_rate: float | None
    agreement: float | None
    """Mean agreement with the size-1 answers (1.0 for size 1 itself)."""
    agreeing: int
    length_ratio: float | None
    """Answer length relative to size 1 (packed answers tend to get shorter)."""
    items_per_min: float | None
    prompt_tokens_per_item: float | None
    completion_tokens_per_item: float | None
    cost_per_item: float | None
    cost: float | None
    requests: int
    elapsed_s: float

    def score(self) -> SizeScore:
        return SizeScore(self.size, self.agreement, self.items_per_min, self.first_try_rate)

    def measured(self) -> dict[str, Any]:
        """The figures saved with a recommendation."""
        return {
            "agreement": self.agreement,
            "first_try_rate": self.first_try_rate,
            "length_ratio": self.length_ratio,
            "items_per_min": self.items_per_min,
            "cost_per_item_usd": self.cost_per_item,
        }


@dataclass(slots=True)
class TuneReport:
    """Every size's result and the recommendation."""

    sizes: list[SizeResult]
    recommended: int
    min_agreement: float
    sample: int
    seed: int
    skipped: list[int] = field(default_factory=list)
    """Sizes not measured because the spend would have passed ``max_cost``."""

    @property
    def cost(self) -> float | None:
        """What tune spent (None when a size's cost is unknown)."""
        costs = [s.cost for s in self.sizes]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    def result(self, size: int) -> SizeResult | None:
        return next((s for s in self.sizes if s.size == size), None)


@dataclass(frozen=True, slots=True)
class TuneEstimate:
    """What tune will send, counted before it starts (first attempts only, no retries)."""

    records: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    """The answer budgets (``max_tokens``) of every request: an upper bound."""
    cost: float | None
    """Prompt and answer-budget tokens at the model's price; None when the price is unknown."""


def normalise_sizes(sizes: Iterable[int]) -> list[int]:
    """Sorted, unique, with the reference size 1 always first."""
    out = sorted({1, *sizes})
    if out[0] < 1:
        raise UsageError("pack sizes must be whole numbers of at least 1")
    return out


def sample_records(records: Sequence[Mapping[str, Any]], sample: int, seed: int) -> list[dict[str, Any]]:
    """``sample`` records drawn with ``random.Random(seed)``, kept in input order (all when fewer)."""
    if sample < 1:
        raise UsageError("the sample needs at least 1 record")
    return [dict(r) for r in reservoir_sample(records, sample, seed)]


def reservoir_sample(records: Iterable[Mapping[str, Any]], size: int, seed: int) -> list[Mapping[str, Any]]:
    """``size`` records chosen uniformly in one pass (Algorithm R), returned in input order.

    The input is streamed: memory holds the sample, not the file. The CLI samples a file
    with it and the Python API a list, so one seed picks the same records either way.
    """
    rng = random.Random(seed)
    kept: list[tuple[int, Mapping[str, Any]]] = []
    for seen, record in enumerate(records):
        if seen < size:
            kept.append((seen, record))
            continue
        slot = rng.randint(0, seen)
        if slot < size:
            kept[slot] = (seen, record)
    return [record for _, record in sorted(kept, key=lambda pair: pair[0])]


def estimate_tune_cost(
    task: Task,
    records: Sequence[Mapping[str, Any]],
    *,
    sizes: Iterable[int] = DEFAULT_SIZES,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    pack: str = "json",
    price: Price | None = None,
) -> TuneEstimate:
    """Tokens and cost of tune's first attempts, from the rendered packs (no API calls)."""
    packer = choose_packer(pack, task)
    items: list[Item] = []
    for index, record in enumerate(sample_records(records, sample, seed)):
        try:
            items.append(Item(index, str(index), task.render_input(record)))
        except ItemError:
            continue  # fails at ingest in the real run, without a request
    requests = prompt = completion = 0
    for size in normalise_sizes(sizes):
        for start in range(0, len(items), size):
            request = packer.render(task, items[start : start + size])
            requests += 1
            prompt += request.est_prompt_tokens
            completion += request.max_tokens
    cost = None
    if price is not None:
        cost = price.cost(Usage(prompt_tokens=prompt, completion_tokens=completion))
    return TuneEstimate(len(items), requests, prompt, completion, cost)


async def tune(
    task: Task,
    records: Sequence[Mapping[str, Any]],
    provider_factory: ProviderFactory,
    *,
    sizes: Iterable[int] = DEFAULT_SIZES,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    min_agreement: float = 0.98,
    options: RunOptions | None = None,
    prices: PriceTable | None = None,
    max_cost: float | None = None,
    work_dir: Path | None = None,
    progress: Callable[[SizeResult], None] | None = None,
) -> TuneReport:
    """Run the sample at every size (1 first, as the reference) and recommend one.

    ``provider_factory`` makes a fresh provider per size (a job opens and closes
    its provider); a task's model cascade is not used: tune measures that
    provider's model (for a cascade, tune once per model). ``options`` are the
    run's options; the pack size is fixed per size and the result cache is never
    used, so every size really asks the model.
    ``max_cost`` (USD) bounds the whole tune: each size runs with what is left as
    its budget, and the size that would pass it, and every later one, is skipped
    (``report.skipped``). ``work_dir`` keeps the per-size job
    stores (default: a temporary directory, removed afterwards).
    """
    if not 0.0 <= min_agreement <= 1.0:
        raise UsageError("--min-agreement must be between 0 and 1")
    chosen = sample_records(records, sample, seed)
    if not chosen:
        raise UsageError("the input has no records to tune on")
    options = options or RunOptions()
    ordered = normalise_sizes(sizes)
    # A size is measured on one model: a cascade's later models would answer some
    # records instead, and mix two models' quality into one figure.
    single = dataclasses.replace(task, models=()) if task.models else task
    with tempfile.TemporaryDirectory(prefix="llmbatch-tune-") as tmp:
        root = work_dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        input_path = root / "sample.jsonl"
        _write_jsonl(input_path, chosen)
        results: list[SizeResult] = []
        skipped: list[int] = []
        reference: dict[IdValue, JSON] = {}
        spent = 0.0
        for position, size in enumerate(ordered):
            budget = None if max_cost is None else max_cost - spent
            if budget is not None and budget <= 0:
                skipped.extend(ordered[position:])
                break
            spec = JobSpec(
                task=single,
                input=input_path,
                output=None,
                job_dir=root / f"size-{size}",
                options=dataclasses.replace(
                    options,
                    batch_size=size,
                    max_batch_size=max(size, options.max_batch_size),
                    max_cost=budget,
                ),
                prices=prices,
                restart=True,
                cache_dir=None,
            )
            started = time.monotonic()
            try:
                job = await run_job(spec, provider_factory())
            except BudgetReached:
                # A size measured on part of the sample is not comparable: drop it.
                skipped.extend(ordered[position:])
                break
            answers = _answers(spec.job_dir)
            if size == 1:
                reference = answers
            comparison = compare(reference, answers, task.item_schema)
            summary = job.metrics.summary()
            result = _size_result(size, len(chosen), summary, comparison, time.monotonic() - started)
            results.append(result)
            spent += result.cost or 0.0
            if progress is not None:
                progress(result)
    best = recommend([r.score() for r in results], min_agreement)
    return TuneReport(results, best, min_agreement, len(chosen), seed, skipped)


def _size_result(
    size: int, records: int, summary: Mapping[str, Any], comparison: Comparison, elapsed: float
) -> SizeResult:
    done = summary["items_this_run"] or 0

    def per_item(value: float | None) -> float | None:
        return None if value is None or not done else value / done

    return SizeResult(
        size=size,
        records=records,
        ok=summary["items_ok"],
        first_try_rate=summary["first_try_rate"],
        agreement=comparison.agreement,
        agreeing=comparison.agreeing,
        length_ratio=comparison.length_ratio,
        items_per_min=summary["items_per_min"],
        prompt_tokens_per_item=per_item(summary["prompt_tokens"]),
        completion_tokens_per_item=per_item(summary["completion_tokens"]),
        cost_per_item=summary["cost_per_item_usd"],
        cost=summary["cost_usd"],
        requests=summary["requests"],
        elapsed_s=elapsed,
    )


def _answers(job_dir: Path) -> dict[IdValue, JSON]:
    """The successful answers of a finished job, by record id."""
    return {r.id: r.answer for r in read_results(job_dir) if r.status == "ok"}


def _write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


# -- the saved ceiling -----------------------------------------------------------


def tuned_path(task_path: str | Path) -> Path:
    """``sentiment.toml`` → ``sentiment.tuned.json``, next to it."""
    return Path(task_path).with_suffix(".tuned.json")


def save_tuned(
    task_path: str | Path,
    task: Task,
    report: TuneReport,
    *,
    model: str | None = None,
    endpoint: str | None = None,
) -> Path:
    """Write the recommended size as the auto-sizing ceiling for this task (and model)."""
    path = tuned_path(task_path)
    data = {
        "version": TUNED_VERSION,
        "task_fingerprint": task.fingerprint,
        "model": model,
        "endpoint": endpoint,
        "max_batch_size": report.recommended,
        "min_agreement": report.min_agreement,
        "sample": report.sample,
        "seed": report.seed,
        "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "measured": {str(s.size): s.measured() for s in report.sizes},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_tuned_ceiling(task_path: str | Path, task: Task, *, model: str | None = None) -> int | None:
    """The saved ceiling for this task, or None when there is none that applies.

    It applies only while the task is unchanged (same fingerprint: instructions,
    schema, template, parameters) and, when ``model`` is given and the file names
    one, for that model: a size measured on one model says nothing about another.
    """
    path = tuned_path(task_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}; delete it or run `llmbatch tune --save` again") from exc
    if not isinstance(data, dict) or data.get("task_fingerprint") != task.fingerprint:
        return None
    if model is not None and data.get("model") not in (None, model):
        return None
    ceiling = data.get("max_batch_size")
    if not isinstance(ceiling, int) or isinstance(ceiling, bool) or ceiling < 1:
        raise UsageError(f"{path} has no valid max_batch_size; delete it or run `llmbatch tune --save` again")
    return ceiling
