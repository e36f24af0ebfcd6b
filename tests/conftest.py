# ---------------------------------------------------------------------------------
# End-to-end fixtures (test_cli_e2e.py, test_chaos.py, test_resume.py,
# test_hostile_input.py, test_secrets.py): the simulator on 127.0.0.1, in a thread
# of this process or as its own process. The helpers live in tests/_e2e_helpers.py.
# ---------------------------------------------------------------------------------

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _e2e_helpers import SimProcess, sim_process
from llmbatch.sim import SimConfig, run_in_thread
from llmbatch.sim.server import ThreadedServer


@pytest.fixture
def sim_thread() -> Iterator[Callable[..., ThreadedServer]]:
    """``start(**knobs)``: a simulator with ``SimConfig(**knobs)`` in a thread, stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(**knobs: Any) -> ThreadedServer:
            return stack.enter_context(run_in_thread(SimConfig(**knobs)))

        yield start


@pytest.fixture
def sim_proc() -> Iterator[Callable[..., SimProcess]]:
    """``start(*options)``: ``llmbatch sim serve OPTIONS`` as its own process, stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(*options: str) -> SimProcess:
            return stack.enter_context(sim_process(*options))

        yield start


# --- end of the end-to-end fixtures -------------------------------------------------
