"""Ingest: ids keep their JSON value, fallback ids never collide, and a resumed job checks its input."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from llmbatch import Task, UsageError
from llmbatch._io import Record
from llmbatch._store.ingest import ingest
from llmbatch._store.job import PENDING, JobStore

TASK = Task(instructions="Classify.", input="{text}", output="text")


def records(*rows: dict[str, Any]) -> list[Record]:
    return [Record(i, i, dict(row)) for i, row in enumerate(rows)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    job = JobStore.open(tmp_path / "job")
    yield job
    job.close()


def ids_and_status(store: JobStore) -> list[tuple[Any, str, str]]:
    return [(r.id, r.status, r.error) for r in store.results()]


def test_ids_keep_their_json_value(store: JobStore) -> None:
    ingest(store, TASK, records({"id": 1, "text": "a"}, {"id": "1", "text": "b"}, {"id": 2.5, "text": "c"}))
    got = ids_and_status(store)
    assert [(i, type(i)) for i, _, _ in got] == [(1, int), ("1", str), (2.5, float)]
    assert all(status == "stopped" for _, status, _ in got)  # pending, none a duplicate


def test_the_number_1_twice_is_a_duplicate_but_not_with_the_string_1(store: JobStore) -> None:
    report = ingest(
        store, TASK, records({"id": 1, "text": "a"}, {"id": "1", "text": "b"}, {"id": 1, "text": "c"})
    )
    got = ids_and_status(store)
    assert got[1][1] != "failed" and got[2][1] == "failed" and "duplicate" in got[2][2]
    assert any("duplicate id" in notice for notice in report.notices)


@pytest.mark.parametrize("bad", [[1, 2], {"a": 1}])
def test_a_list_or_object_id_fails_its_record_alone(store: JobStore, bad: Any) -> None:
    ingest(store, TASK, records({"id": bad, "text": "a"}, {"id": "ok", "text": "b"}))
    got = ids_and_status(store)
    assert got[0][1] == "failed" and "must be a string or a number" in got[0][2]
    assert got[0][0] == 1  # named by its line number
    assert got[1][:2] == ("ok", "stopped")


def test_missing_null_and_empty_ids_fall_back_to_line_numbers_and_say_so(store: JobStore) -> None:
    report = ingest(
        store,
        TASK,
        records({"text": "a"}, {"id": None, "text": "b"}, {"id": "", "text": "c"}, {"id": "x", "text": "d"}),
    )
    assert [r.id for r in store.results()] == [1, 2, 3, "x"]
    assert any("3 records have no 'id' field" in n and "line numbers" in n for n in report.notices)


def test_a_fallback_id_never_takes_a_real_ones(store: JobStore) -> None:
    # Line 2 has no id; record 3's own id is 2: the fallback yields, and neither fails.
    report = ingest(store, TASK, records({"id": "a", "text": "a"}, {"text": "b"}, {"id": 2, "text": "c"}))
    got = ids_and_status(store)
    assert [g[0] for g in got] == ["a", "line-2", 2]
    assert {g[1] for g in got} == {"stopped"}
    assert any("line-N" in notice for notice in report.notices)


def test_an_id_less_input_says_once_that_ids_are_line_numbers(store: JobStore) -> None:
    report = ingest(store, TASK, records({"text": "a"}, {"text": "b"}))
    assert report.notices == [
        "no record has 'id' field: their ids are their line numbers (1 = the first line)"
    ]


def test_a_template_field_none_of_the_first_records_has_is_a_usage_error(store: JobStore) -> None:
    task = Task(instructions="Classify.", input="{title}: {text}", output="text")
    with pytest.raises(UsageError, match=r"'title'.*none of the first 2 records"):
        ingest(store, task, records({"id": "a", "text": "x"}, {"id": "b", "text": "y"}))
    assert store.counts() == {}  # nothing stored, nothing sent


def test_a_template_field_some_records_lack_fails_only_those(store: JobStore) -> None:
    task = Task(instructions="Classify.", input="{title}: {text}", output="text")
    ingest(store, task, records({"id": "a", "title": "t", "text": "x"}, {"id": "b", "text": "y"}))
    assert [r.status for r in store.results()] == ["stopped", "failed"]


# -- the input a resumed job is given -------------------------------------------------------------


def ingest_twice(store: JobStore, first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]]) -> bool:
    ingest(store, TASK, records(*first))
    with store.transaction():
        store.db.execute("UPDATE items SET status = 'done', answer = ?", (json.dumps("answered"),))
    return ingest(store, TASK, records(*second)).started_over


def test_the_same_records_again_resume(store: JobStore) -> None:
    rows = [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]
    assert not ingest_twice(store, rows, rows)
    assert [r.status for r in store.results()] == ["ok", "ok"]


@pytest.mark.parametrize(
    "second",
    [
        [{"id": "a", "text": "x"}, {"id": "b", "text": "CHANGED"}],  # same ids, other text
        [{"id": "a", "text": "x"}],  # fewer records
        [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "c", "text": "z"}],  # more
        [{"id": "a", "text": "x"}, {"id": "B", "text": "y"}],  # another id
    ],
)
def test_other_records_start_over_and_keep_no_answer(store: JobStore, second: list[dict[str, Any]]) -> None:
    assert ingest_twice(store, [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}], second)
    results = list(store.results())
    assert [r.id for r in results] == [row["id"] for row in second]
    assert all(r.status == "stopped" and r.answer is None for r in results)
    assert store.request_totals()["requests"] == 0


def test_an_unchanged_file_skips_the_rescan(store: JobStore) -> None:
    ingest(store, TASK, records({"id": "a", "text": "x"}))

    def explode() -> Iterator[Record]:
        raise AssertionError("read although unchanged")
        yield  # pragma: no cover

    assert not ingest(store, TASK, explode(), unchanged=True).started_over


def test_an_ingest_cut_short_is_redone_from_this_input(store: JobStore) -> None:
    # A first run died while reading input A: some of A's rows, no digest.
    store.add_items([(0, "a", None, 0, "from A", "h", PENDING, "", "")])
    report = ingest(store, TASK, records({"id": "b", "text": "from B"}, {"id": "c", "text": "also B"}))
    assert not report.resumed
    assert [r.id for r in store.results()] == ["b", "c"]
