"""One process per job: the lock names its holder and dies with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmbatch import UsageError
from llmbatch._store.lock import JobLock

HOLD = (
    "import sys, time; from pathlib import Path; from llmbatch._store.lock import JobLock\n"
    "lock = JobLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)"
)


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match=f"process {holder.pid}"):
            JobLock.acquire(tmp_path)
        holder.kill()  # dies holding it: the kernel releases the lock
        holder.wait()
        with JobLock.acquire(tmp_path) as lock:
            assert (tmp_path / "job.lock").read_text().strip() == str(os.getpid())
        assert lock.path.exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_release_lets_the_next_run_in(tmp_path: Path) -> None:
    lock = JobLock.acquire(tmp_path)
    lock.release()
    lock.release()  # twice is harmless
    JobLock.acquire(tmp_path).release()
