"""The SQLite job store: migrations, idempotent ingest, keyset paging, atomic requests, WAL reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbatch._store.job import DONE, FAILED, MIGRATIONS, PENDING, ItemRow, ItemUpdate, JobStore, RequestRow
from llmbatch._types import ItemStatus


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    job = JobStore.open(tmp_path / "job")
    yield job
    job.close()


def row(idx: int, item_id: str | None = None, status: ItemStatus = PENDING) -> ItemRow:
    return (idx, item_id or f"id{idx}", None, 0, f"text {idx}", f"hash{idx}", status, "", "")


def request_row(keys: list[int], **extra: object) -> RequestRow:
    return RequestRow(started=1.0, finished=2.0, keys=keys, attempt=0, status="ok", **extra)  # type: ignore[arg-type]


def item(store: JobStore, idx: int) -> tuple[object, ...]:
    return store.db.execute(
        "SELECT status, attempts, answer, error, error_kind, cost FROM items WHERE idx = ?", (idx,)
    ).fetchone()


# -- migrations --------------------------------------------------------------------------


def test_migrations_recorded(store: JobStore) -> None:
    rows = store.db.execute("SELECT id, name FROM migrations ORDER BY id").fetchall()
    assert rows == [(n, m.__name__) for n, m in enumerate(MIGRATIONS, start=1)]
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "items", "requests", "migrations"} <= tables
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopen_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    first = JobStore.open(tmp_path)
    first.add_items([row(0)])
    first.set_meta("identity", {"task": "t"})
    applied = first.db.execute("SELECT id, applied FROM migrations").fetchall()
    first.close()
    again = JobStore.open(tmp_path)
    try:
        assert again.db.execute("SELECT id, applied FROM migrations").fetchall() == applied
        assert again.get_meta("identity") == {"task": "t"}
        assert again.counts() == {PENDING: 1}
    finally:
        again.close()


def test_migration_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_done(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("migration failed midway")

    import llmbatch._store.job as store_module

    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, half_done))
    with pytest.raises(RuntimeError, match="midway"):
        JobStore.open(tmp_path)
    db = sqlite3.connect(tmp_path / "job.sqlite")
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "half" not in tables
        assert [r[0] for r in db.execute("SELECT id FROM migrations")] == list(range(1, len(MIGRATIONS) + 1))
    finally:
        db.close()


# -- meta --------------------------------------------------------------------------------


def test_meta_round_trip_and_overwrite(store: JobStore) -> None:
    assert store.get_meta("missing") is None
    store.set_meta("k", {"a": [1, "é"]})
    assert store.get_meta("k") == {"a": [1, "é"]}
    store.set_meta("k", True)
    assert store.get_meta("k") is True


# -- items -------------------------------------------------------------------------------


def test_add_items_insert_or_ignore(store: JobStore) -> None:
    store.add_items([row(0), row(1)])
    store.update_items([ItemUpdate(0, DONE, 1, {"label": "x"})])
    store.add_items([row(0), row(1), row(2)])  # a resumed ingest sends the same rows again
    assert store.counts() == {DONE: 1, PENDING: 2}
    assert item(store, 0)[0] == DONE


def test_add_items_from_a_generator(store: JobStore) -> None:
    store.add_items(row(i) for i in range(5))
    assert store.counts() == {PENDING: 5}


def test_fail_duplicate_ids_fails_later_duplicates_only(store: JobStore) -> None:
    store.add_items([row(0, "a"), row(1, "b"), row(2, "a"), row(3, "c"), row(4, "a"), row(5, "b")])
    dupes = store.fail_duplicate_ids()
    assert dupes == [("a", 0, 2), ("a", 0, 4), ("b", 1, 5)]
    statuses = [item(store, i)[0] for i in range(6)]
    assert statuses == [PENDING, PENDING, FAILED, PENDING, FAILED, FAILED]
    assert item(store, 2)[3:5] == ("duplicate id 'a': first used by record 0", "duplicate_id")
    assert store.fail_duplicate_ids() == []  # already failed: not reported twice


def test_no_duplicates(store: JobStore) -> None:
    store.add_items([row(0), row(1)])
    assert store.fail_duplicate_ids() == []
    assert store.counts() == {PENDING: 2}


def test_pending_pages_by_keyset(store: JobStore) -> None:
    store.add_items([row(i) for i in range(10)])
    store.update_items([ItemUpdate(3, DONE, 1, "x"), ItemUpdate(4, FAILED, 3, None, "e", "invalid")])
    first = store.pending(-1, 3)
    assert first == [(0, "id0", "text 0", 0), (1, "id1", "text 1", 0), (2, "id2", "text 2", 0)]
    second = store.pending(first[-1][0], 3)
    assert [r[0] for r in second] == [5, 6, 7]
    # an item finishing meanwhile does not shift later pages (keyset, not OFFSET)
    store.update_items([ItemUpdate(0, DONE, 1, "x")])
    assert [r[0] for r in store.pending(second[-1][0], 3)] == [8, 9]
    assert store.pending(9, 3) == []


def test_pending_carries_attempts(store: JobStore) -> None:
    store.add_items([row(0)])
    store.update_items([ItemUpdate(0, PENDING, 2, error="missing")])
    assert store.pending() == [(0, "id0", "text 0", 2)]


def test_update_items_keeps_cost_when_not_given(store: JobStore) -> None:
    store.add_items([row(0)])
    store.update_items([ItemUpdate(0, PENDING, 1, cost=0.5)])
    store.update_items([ItemUpdate(0, DONE, 2, "a")])
    assert item(store, 0)[5] == 0.5


def test_failures_by_kind(store: JobStore) -> None:
    store.add_items([row(0), row(1), row(2), row(3)])
    store.update_items(
        [
            ItemUpdate(0, FAILED, 3, None, "m", "missing"),
            ItemUpdate(1, FAILED, 3, None, "m", "missing"),
            ItemUpdate(2, FAILED, 1, None, "?", ""),
        ]
    )
    assert store.failures_by_kind() == {"missing": 2, "unknown": 1}


# -- results -----------------------------------------------------------------------------


def test_results_in_input_order(store: JobStore) -> None:
    store.add_items([row(i) for i in (5, 1, 3, 0)])
    store.update_items(
        [
            ItemUpdate(3, DONE, 1, {"label": "é"}),
            ItemUpdate(1, FAILED, 3, None, "answer missing", "missing"),
            ItemUpdate(0, DONE, 2, "text answer", error="old error"),
        ]
    )
    results = list(store.results())
    assert [r.index for r in results] == [0, 1, 3, 5]
    by_index = {r.index: r for r in results}
    assert by_index[3].status == "ok" and by_index[3].answer == {"label": "é"}
    assert by_index[0].answer == "text answer" and by_index[0].error == ""  # done rows carry no error
    assert by_index[1].status == "failed" and by_index[1].error == "answer missing"
    assert by_index[1].error_kind == "missing" and by_index[1].attempts == 3
    assert by_index[5].status == "stopped"  # still pending: not ok, and not failed either
    assert "run the same command" in by_index[5].error and by_index[5].answer is None


def test_results_is_a_stream(store: JobStore) -> None:
    store.add_items([row(i) for i in range(3)])
    results = store.results()
    assert next(results).index == 0  # an iterator, not a list


# -- requests ----------------------------------------------------------------------------


def test_record_request_commits_request_and_items_together(store: JobStore) -> None:
    store.add_items([row(0), row(1)])
    store.record_request(
        request_row([0, 1], prompt_tokens=100, completion_tokens=20, cached_tokens=50, cost=0.01, items_ok=1),
        [ItemUpdate(0, DONE, 1, {"a": 1}, cost=0.005), ItemUpdate(1, PENDING, 1, error="missing")],
    )
    assert item(store, 0)[:3] == (DONE, 1, '{"a": 1}')
    assert item(store, 1)[:4] == (PENDING, 1, None, "missing")
    keys, size = store.db.execute("SELECT keys, size FROM requests").fetchone()
    assert (keys, size) == ("[0, 1]", 2)
    totals = store.request_totals()
    assert totals == {
        "requests": 1,
        "ok": 1,
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cached_tokens": 50,
        "cache_write_tokens": 0,
        "cost": 0.01,
        "unpriced": 0,
    }


def test_record_request_rolls_back_on_error(store: JobStore) -> None:
    store.add_items([row(0), row(1)])
    updates = [ItemUpdate(0, DONE, 1, "fine"), ItemUpdate(1, DONE, 1, object())]  # not JSON: fails mid-way
    with pytest.raises(TypeError):
        store.record_request(request_row([0, 1]), updates)
    assert store.db.execute("SELECT COUNT(*) FROM requests").fetchone() == (0,)
    assert item(store, 0)[0] == PENDING
    assert not store.db.in_transaction
    store.record_request(request_row([0]), [ItemUpdate(0, DONE, 1, "ok")])  # the store still works
    assert item(store, 0)[0] == DONE


def test_transaction_rolls_back_everything_inside(store: JobStore) -> None:
    store.add_items([row(0)])
    with pytest.raises(RuntimeError), store.transaction():
        store.update_items([ItemUpdate(0, DONE, 1, "x")])
        store.set_meta("k", 1)
        raise RuntimeError("crash")
    assert item(store, 0)[0] == PENDING
    assert store.get_meta("k") is None


def test_request_totals_empty_and_unpriced(store: JobStore) -> None:
    assert store.request_totals()["requests"] == 0
    store.record_request(request_row([]), [])
    store.record_request(RequestRow(1.0, 2.0, [], 0, "error", "timeout", "t/o"), [])
    totals = store.request_totals()
    assert totals["requests"] == 2 and totals["ok"] == 1 and totals["unpriced"] == 2


# -- concurrent readers ----------------------------------------------------------------------


def test_readonly_open_while_a_writer_is_open(tmp_path: Path) -> None:
    writer = JobStore.open(tmp_path)
    try:
        writer.add_items([row(0), row(1)])
        writer.db.execute("BEGIN IMMEDIATE")  # a write in progress
        writer.update_items([ItemUpdate(0, DONE, 1, "x")])
        reader = JobStore.open(tmp_path, readonly=True)
        try:
            assert reader.counts() == {PENDING: 2}  # sees the last commit, does not block
            writer.db.execute("COMMIT")
            assert reader.counts() == {DONE: 1, PENDING: 1}
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.set_meta("k", 1)
        finally:
            reader.close()
    finally:
        writer.close()
