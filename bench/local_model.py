"""Benchmark packing on the bundled local model: pack 1 against larger packs, per format.

Runs the first N example reviews through the sentiment task on SmolLM2-135M
(in-process, CPU) once per (format, pack size), each in a fresh job dir with
the result cache off, and prints one row per run:

- items/min: records finished (ok or failed) per minute of wall time;
- in tok/item: prompt tokens of every request, retries included, per record,
  and its ratio to pack 1 of the same format (the saving packing buys);
- 1st try: share of answered records that were valid on their first attempt;
- ok: share of records that ended with a valid answer;
- requests: requests sent, retries and splits included.

Usage::

    python bench/local_model.py                      # 30 records, packs 1,5,10, json and numbered
    python bench/local_model.py --records 10 --sizes 1,5 --formats json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbatch import JobSpec, RetryPolicy, RunOptions, Task, run_job
from llmbatch.providers import Provider, ProviderConfig, create_provider

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Row:
    format: str
    size: int
    summary: dict[str, Any]

    @property
    def tokens_per_item(self) -> float:
        tokens: int = self.summary["prompt_tokens"]
        items: int = self.summary["items_total"]
        return tokens / max(1, items)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30, help="first N records of the input (30)")
    parser.add_argument("--sizes", default="1,5,10", help="pack sizes, comma-separated (1,5,10)")
    parser.add_argument("--formats", default="json,numbered", help="pack formats (json,numbered)")
    parser.add_argument("--input", type=Path, default=ROOT / "examples" / "reviews.jsonl")
    parser.add_argument("--task", type=Path, default=ROOT / "examples" / "sentiment.toml")
    parser.add_argument("--model-path", type=Path, help="a GGUF file (default: the bundled SmolLM2)")
    parser.add_argument("--threads", type=int, help="CPU threads for the model (default: all cores)")
    parser.add_argument("--max-attempts", type=int, default=3, help="answer attempts per record (3)")
    parser.add_argument("--json", type=Path, help="also write every run's full metrics to this file")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.records < 1 or not args.sizes or min(args.sizes) < 1:
        parser.error("--records and every --sizes value must be at least 1")
    return args


def _head(source: Path, n: int, target: Path) -> int:
    """Copy the first ``n`` non-blank lines of a JSONL file; returns how many were copied."""
    lines: list[str] = []
    with source.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line if line.endswith("\n") else line + "\n")
            if len(lines) == n:
                break
    target.write_text("".join(lines), encoding="utf-8")
    return len(lines)


async def _run_all(args: argparse.Namespace, provider: Provider, task: Task, workdir: Path) -> list[Row]:
    source = workdir / "input.jsonl"
    count = _head(args.input, args.records, source)
    print(
        f"{count} records from {args.input.name}, task {task.name}, model {provider.model}", file=sys.stderr
    )
    rows: list[Row] = []
    for fmt in args.formats:
        for size in args.sizes:
            spec = JobSpec(
                task=task,
                input=source,
                output=None,
                job_dir=workdir / f"{fmt}-{size}",
                options=RunOptions(
                    batch_size=size, pack=fmt, policy=RetryPolicy(max_attempts=args.max_attempts)
                ),
                cache_dir=None,
            )
            started = time.monotonic()
            result = await run_job(spec, provider)
            summary = result.metrics.summary()
            rows.append(Row(fmt, size, summary))
            print(
                f"  {fmt:<9} pack {size:>3}: {summary['items_ok']}/{summary['items_total']} ok, "
                f"{summary['requests']} requests, {time.monotonic() - started:.0f} s",
                file=sys.stderr,
            )
    return rows


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def render(rows: list[Row]) -> str:
    """The results as a fixed-width table."""
    base = {r.format: r.tokens_per_item for r in rows if r.size == 1}
    header = ("format", "pack", "items/min", "in tok/item", "vs pack 1", "1st try", "ok", "requests")
    lines = [header]
    for r in rows:
        s = r.summary
        ratio = f"{r.tokens_per_item / base[r.format]:.2f}×" if r.format in base else "–"
        lines.append(
            (
                r.format,
                str(r.size),
                f"{s['items_per_min']:.1f}",
                f"{r.tokens_per_item:.0f}",
                ratio,
                _pct(s["first_try_rate"]),
                _pct(s["item_success_rate"]),
                str(s["requests"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    task = Task.from_file(args.task)
    extra: dict[str, Any] = {}
    if args.model_path:
        extra["model_path"] = str(args.model_path)
    if args.threads:
        extra["n_threads"] = args.threads
    provider = create_provider("local", ProviderConfig(extra=extra))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llmbatch-bench-") as tmp:
        rows = asyncio.run(_run_all(args, provider, task, Path(tmp)))
    print()
    print(render(rows))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        data = [{"format": r.format, "pack": r.size, **r.summary} for r in rows]
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
