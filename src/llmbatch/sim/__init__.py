"""A simulated OpenAI-compatible provider: llmbatch's test backend and demo backend.

It answers like a model that follows instructions, deterministically (see
``oracle``), understands every pack format llmbatch sends, and misbehaves on
purpose, reproducibly from a seed: server errors, hangs, rate limits, dropped,
corrupted, misnumbered, truncated and malformed answers.
With ``pack_accuracy_decay`` and ``answer_shortening`` (see ``_quality``) its
answers get wrong-but-valid or shorter as packs grow, the way real models' do.

    async with SimServer(SimConfig(seed=1, drop_rate=0.1)) as server:
        ...  # point any OpenAI client at server.base_url

Only ``llmbatch._pack.tokens`` and ``llmbatch._task`` are imported from the package,
so the simulator checks the client rather than sharing its assumptions.
"""

from __future__ import annotations

from .config import SimConfig
from .engine import SimEngine, SimResponse, SimStats
from .oracle import answer as oracle_answer
from .server import SimServer, run_in_thread, serve

__all__ = [
    "SimConfig",
    "SimEngine",
    "SimResponse",
    "SimServer",
    "SimStats",
    "oracle_answer",
    "run_in_thread",
    "serve",
]
