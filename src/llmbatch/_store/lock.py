"""One process per job: an exclusive lock on ``<job dir>/job.lock`` for the life of a run.

Two runs on one job directory would both send its pending records (paying twice)
and each hold a budget of its own. The lock is an OS advisory lock (``flock``),
so it is released by the kernel when its process dies however it dies: a lock
left by a killed run is never stale, the next run simply takes it. The file
holds the holder's PID so the refusal can name it.

    >>> with JobLock.acquire(Path(".llmbatch/job")):   # doctest: +SKIP
    ...     ...                                         # the job runs here
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from .._exceptions import UsageError

__all__ = ["JobLock"]

LOCK_NAME = "job.lock"


class JobLock:
    """Held while a job runs; ``release()`` (or leaving the ``with`` block) lets it go."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, job_dir: Path) -> JobLock:
        """Take the job's lock, or raise UsageError naming the process that holds it."""
        job_dir.mkdir(parents=True, exist_ok=True)
        path = job_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise UsageError(
                f"the job in {job_dir} is being run by {who}: wait for it to finish, stop it, "
                "or give this run another --job-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Ours now: record our PID (the previous holder's, if any, is stale text).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> JobLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
