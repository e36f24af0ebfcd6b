"""Parquet in and out (pyarrow)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmbatch import JobSpec, ProviderConfig, Result, RunOptions, Task, UsageError, create_provider, run_job
from llmbatch._io import Row, open_reader, open_writer

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_parquet_in_parquet_out_keeps_order_and_types(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "text": f"review {i}: {'great' if i % 2 else 'terrible'}"} for i in range(300)]
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source, row_group_size=64)
    assert [r.fields for r in open_reader(source)] == rows

    task = Task.from_file(EXAMPLES / "sentiment.toml")
    task = Task(instructions=task.instructions, input="{text}", output=task.output, name="s")
    out = tmp_path / "out.parquet"
    spec = JobSpec(task=task, input=source, output=out, job_dir=tmp_path / "job", options=RunOptions())
    result = asyncio.run(run_job(spec, create_provider("sim", ProviderConfig())))
    assert result.rows_written == 300

    table = pq.read_table(out)
    assert table.column_names == ["id", "label", "confidence", "status", "error"]
    assert table.schema.field("confidence").type == pa.float64()
    assert table.column("id").to_pylist() == [r["id"] for r in rows]
    assert set(table.column("status").to_pylist()) == {"ok"}


def test_a_failed_row_keeps_typed_columns_null(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "a", "text": ""}, {"id": "b", "text": "great"}]), source)
    task = Task(
        instructions="Classify.",
        input="{text}",
        output={"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]},
        name="n",
    )
    out = tmp_path / "out.parquet"
    spec = JobSpec(task=task, input=source, output=out, job_dir=tmp_path / "job", options=RunOptions())
    asyncio.run(run_job(spec, create_provider("sim", ProviderConfig())))
    rows = pq.read_table(out).to_pylist()
    assert rows[0]["status"] == "failed" and rows[0]["score"] is None and "empty" in rows[0]["error"]
    assert rows[1]["status"] == "ok" and isinstance(rows[1]["score"], float)


def test_extra_columns_keep_their_type_when_they_start_null(tmp_path: Path) -> None:
    task = Task(instructions="x", output={"type": "object", "properties": {"label": {"type": "string"}}})
    out = tmp_path / "out.parquet"
    rows = [
        Row(Result(0, "a", "failed", None, error="e"), {"agreement": None, "votes": 0}),
        Row(Result(1, "b", "ok", {"label": "x"}), {"agreement": 0.5, "votes": 2}),
    ]
    assert open_writer(out, task, extra_columns={"agreement": "number", "votes": "integer"}).write(rows) == 2
    table = pq.read_table(out)
    assert table.column_names == ["id", "label", "status", "error", "agreement", "votes"]
    assert (table.schema.field("agreement").type, table.schema.field("votes").type) == (
        pa.float64(),
        pa.int64(),
    )
    assert table.column("agreement").to_pylist() == [None, 0.5]
    assert table.column("votes").to_pylist() == [0, 2]


def test_parquet_to_stdout_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="standard output"):
        open_writer("-", Task(instructions="x"), "parquet")
