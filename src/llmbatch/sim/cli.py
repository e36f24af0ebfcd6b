"""``llmbatch sim serve``: run the simulator as a local OpenAI-compatible endpoint.

    llmbatch sim serve --port 8765 --seed 1 --drop-rate 0.05 --rate-limit-rpm 600
    llmbatch sim serve --pack-accuracy-decay 0.03 --answer-shortening 0.3
    llmbatch sim serve --batch-delay 30 --batch-failure-rate 0.05 --batch-expire-rate 0.02
    llmbatch run task.toml data.jsonl --base-url http://127.0.0.1:8765/v1 --api-key sk-sim

The group is attached to the main CLI with ``main.add_command(sim)``.
"""

from __future__ import annotations

from typing import Any

import click

from .config import BATCH_API_NAMES, SimConfig
from .server import serve as serve_forever

__all__ = ["sim"]

_RATE = click.FloatRange(0.0, 1.0)
_SECONDS = click.FloatRange(min=0.0)
_POSITIVE = click.IntRange(min=1)


@click.group()
def sim() -> None:
    """A simulated LLM provider for tests and demos (deterministic, with seeded faults)."""


@sim.command(
    epilog="""\b
Examples:
  llmbatch sim serve --port 8765
  llmbatch sim serve --base-latency 0.5 --per-output-token 0.01 --time-scale 0.1
  llmbatch sim serve --rate-limit-rpm 300 --error-rate 0.1 --drop-rate 0.05 --seed 7
"""
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")  # fmt: skip
@click.option("--model", default="sim-1", show_default=True, help="Model name to report.")
@click.option("--base-latency", default=0.0, type=_SECONDS, help="Seconds per completion.")
@click.option("--per-input-token", default=0.0, type=_SECONDS, help="Seconds per prompt token.")
@click.option("--per-output-token", default=0.0, type=_SECONDS, help="Seconds per answer token.")
@click.option("--time-scale", default=1.0, type=_SECONDS, help="Multiplies every latency.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault draws.")
@click.option("--error-rate", default=0.0, type=_RATE, help="Share of requests failing with 5xx.")
@click.option("--timeout-rate", default=0.0, type=_RATE, help="Share of requests that hang.")
@click.option("--hang-seconds", default=3600.0, type=_SECONDS, show_default=True,
              help="How long a hanging request hangs.")  # fmt: skip
@click.option("--rate-limit-rpm", default=None, type=_POSITIVE, help="Requests per minute.")
@click.option("--rate-limit-tpm", default=None, type=_POSITIVE, help="Tokens per minute.")
@click.option("--drop-rate", default=0.0, type=_RATE, help="Share of pack items left out.")
@click.option("--corrupt-rate", default=0.0, type=_RATE, help="Share of answers made invalid.")
@click.option("--misnumber-rate", default=0.0, type=_RATE,
              help="Share of numbered answers under a wrong key.")  # fmt: skip
@click.option("--truncate-rate", default=0.0, type=_RATE, help="Share of packs cut short.")
@click.option("--malformed-rate", default=0.0, type=_RATE, help="Share of packs garbled.")
@click.option("--quota-exhausted", is_flag=True, help="Answer every request 429 insufficient_quota.")
@click.option("--max-concurrency", default=None, type=_POSITIVE,
              help="Completions served at once; the rest wait in line.")  # fmt: skip
@click.option("--pack-accuracy-decay", default=0.0, type=_RATE,
              help="Wrong-but-valid answer rate at the ends of a 50-item pack (grows with size, "
                   "doubles mid-pack; 0 for one item).")  # fmt: skip
@click.option("--answer-shortening", default=0.0, type=_RATE,
              help="Share of a free-text answer's words dropped in a 50-item pack "
                   "(linear in size).")  # fmt: skip
@click.option("--batch-failure-rate", default=0.0, type=_RATE,
              help="Share of batch-API lines that fail (a 500 / an errored result).")  # fmt: skip
@click.option("--batch-expire-rate", default=0.0, type=_RATE,
              help="Share of batch-API lines that expire unanswered.")  # fmt: skip
@click.option("--batch-delay", default=0.0, type=_SECONDS,
              help="Seconds before a batch is worked on (times --time-scale).")  # fmt: skip
@click.option("--batch-api", type=click.Choice(BATCH_API_NAMES), default="openai", show_default=True,
              help="Which provider's OpenAI-shaped batch API /v1/files and /v1/batches speak.")  # fmt: skip
@click.option("--prompt-caching", is_flag=True,
              help="Emulate OpenAI's automatic prompt cache (1,024 tokens on, 128-token steps).")  # fmt: skip
@click.option("--flex-unavailable", default=0.0, type=_RATE,
              help="Share of flex-tier requests answered 429 Resource Unavailable.")  # fmt: skip
@click.option("--flex-latency", default=2.0, type=click.FloatRange(1.0),
              help="Flex-tier completions take this many times as long.")  # fmt: skip
def serve(host: str, port: int, **knobs: Any) -> None:
    """Serve an OpenAI-compatible API at http://HOST:PORT/v1 until interrupted."""
    try:
        config = SimConfig(**knobs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    serve_forever(config, host, port)
