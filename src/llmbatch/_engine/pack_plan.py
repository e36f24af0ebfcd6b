"""Which pack size finishes the rest of the job soonest, and at what cost per record.

A larger pack costs fewer tokens per record (the instructions and the schema's
fixed part are paid once per request) and so gets more records through a token
limit, but it takes longer to answer — and a job is not done until its slowest,
last packs are back. What the rest of a job takes in packs of ``b`` is the
slowest of three paces, plus one pack's latency for the tail (``job_seconds``):

- the **limits**: the requests and tokens left in the provider's allowance go at
  once, the rest at the refill rate; tokens per request are the pack's prompt
  and its answer budget (``charge``);
- the **requests in flight**: ``requests × latency(b) / concurrency`` (Little's law);
- this **process's CPU**: every request costs some (render, send, parse, store),
  which bounds a short job at a high tier, where the limits do not bind.

``best_pack_size`` takes the size that minimises it and, of the sizes within 5%
of that, the largest — the cheapest per record. So a short job at a high tier
gets small packs sent at once (its time is one round trip), a job at a low
token limit the largest packs quality allows (its time is tokens / TPM), and
the end of any job smaller packs (its tail). The quality controller
(``PackSizeControl``) still decides whether a size is answered well enough; the
plan is only its ceiling. ``SizePlanner`` keeps what the plan is made from: the
latency line in pack size, the prompt tokens per size, the CPU per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "JobShape",
    "LatencyFit",
    "SizePlanner",
    "allowance_requests",
    "best_pack_size",
    "burst_ready",
    "job_seconds",
]


class LatencyFit:
    """A request's latency as a line in its pack size, ``fixed + per_item × size``: weighted
    least squares over the requests seen, the recent ones weighing most.

    Until two sizes have been seen the line cannot be told from a point: half the
    latency is taken as fixed (a round trip, the prompt) and half as grown with the
    pack (its answer). Where that guess is wrong, the sizes it leads to tell.

    >>> fit = LatencyFit()
    >>> for size, seconds in ((5, 1.0), (10, 1.5), (20, 2.5)):
    ...     fit.observe(size, seconds)
    >>> round(fit.at(40), 2)
    4.5
    """

    __slots__ = ("_b", "_bb", "_bl", "_l", "_w")

    DECAY = 0.98
    """Weight kept per request: about the last fifty requests count."""

    def __init__(self) -> None:
        self._w = self._b = self._bb = self._l = self._bl = 0.0

    def observe(self, size: int, latency: float) -> None:
        keep = self.DECAY
        self._w = keep * self._w + 1.0
        self._b = keep * self._b + size
        self._bb = keep * self._bb + size * size
        self._l = keep * self._l + latency
        self._bl = keep * self._bl + size * latency

    def line(self) -> tuple[float, float] | None:
        """(fixed seconds, seconds per item), or None before any request."""
        if not self._w:
            return None
        mean_b, mean_l = self._b / self._w, self._l / self._w
        spread = self._bb / self._w - mean_b * mean_b
        if spread > 1e-6 * max(1.0, mean_b * mean_b):
            slope = (self._bl / self._w - mean_b * mean_l) / spread
            slope = max(0.0, slope)
            fixed = mean_l - slope * mean_b
            if fixed >= 0:
                return fixed, slope
            return 0.0, mean_l / max(mean_b, 1e-9)
        return mean_l / 2, mean_l / 2 / max(mean_b, 1e-9)

    def at(self, size: int) -> float | None:
        line = self.line()
        return None if line is None else line[0] + line[1] * size


@dataclass(frozen=True, slots=True)
class JobShape:
    """What the rest of a job looks like to the pack-size planner (``job_seconds``)."""

    remaining: int
    """Records not answered yet."""
    charge: Callable[[int], float]
    """Tokens a request of that many records is charged against the token limit."""
    latency: Callable[[int], float]
    """Seconds a request of that many records takes."""
    concurrency: int
    """Most requests in flight (what the concurrency control can reach)."""
    cpu_per_request: float = 0.0
    """Seconds of this process's CPU a request costs (render, send, parse, store)."""
    request_rate: float | None = None
    """Requests per second the limit refills (None: no such limit known)."""
    token_rate: float | None = None
    request_level: float = 0.0
    """Requests the limit admits right now (its allowance left)."""
    token_level: float = 0.0


def job_seconds(shape: JobShape, size: int) -> float:
    """Seconds the rest of the job takes in packs of ``size``: the slowest of what the limits
    allow (the allowance left now, then the refill), what the requests in flight allow
    (Little's law) and what this process's CPU allows, plus one pack's latency — the tail,
    the last pack sent still has to come back.

    >>> flat = JobShape(remaining=3000, charge=lambda b: 400 + 60 * b,
    ...                 latency=lambda b: 0.4 + 0.1 * b, concurrency=1000, cpu_per_request=0.002)
    >>> round(job_seconds(flat, 8), 2), round(job_seconds(flat, 50), 2)
    (1.95, 5.72)
    """
    requests = math.ceil(shape.remaining / size)
    wait = 0.0
    if shape.request_rate:
        wait = max(wait, max(0.0, requests - shape.request_level) / shape.request_rate)
    if shape.token_rate:
        tokens = requests * shape.charge(size)
        wait = max(wait, max(0.0, tokens - shape.token_level) / shape.token_rate)
    latency = shape.latency(size)
    in_flight = requests * latency / max(1, shape.concurrency)
    cpu = requests * shape.cpu_per_request
    return max(wait, in_flight, cpu) + latency


TIME_TOLERANCE = 0.05
"""How much slower than the fastest a larger pack size may be and still be chosen: within
that, fewer tokens per record (a larger pack) wins."""


def best_pack_size(shape: JobShape, largest: int) -> int:
    """The pack size (1..``largest``) that finishes the rest of the job soonest; of the sizes
    within ``TIME_TOLERANCE`` of that, the largest, because it costs least per record.

    >>> short = JobShape(remaining=3000, charge=lambda b: 400 + 60 * b,
    ...                  latency=lambda b: 0.4 + 0.1 * b, concurrency=1000, cpu_per_request=0.002)
    >>> best_pack_size(short, 50)  # 8 is fastest; 11 is within 5% and cheaper per record
    11
    >>> bound = JobShape(remaining=30000, charge=lambda b: 400 + 60 * b, latency=lambda b: 0.4 + 0.1 * b,
    ...                  concurrency=1000, cpu_per_request=0.002, token_rate=3333.0, token_level=196000)
    >>> best_pack_size(bound, 50)  # a low token limit binds: the fewest tokens per record
    50
    """
    if shape.remaining <= 0 or largest <= 1:
        return 1
    times = {size: job_seconds(shape, size) for size in _candidate_sizes(min(largest, shape.remaining))}
    fastest = min(times.values())
    return max(size for size, seconds in times.items() if seconds <= fastest * (1 + TIME_TOLERANCE))


def allowance_requests(shape: JobShape, size: int) -> int:
    """Requests of ``size`` records the allowance left admits at once, and the rest of the job
    needs: how many may be in flight beyond what Little's law gives at the refill rate."""
    requests = math.ceil(shape.remaining / max(1, size))
    if shape.request_rate is not None:
        requests = min(requests, math.floor(shape.request_level))
    if shape.token_rate is not None:
        requests = min(requests, math.floor(shape.token_level / max(1.0, shape.charge(size))))
    return max(0, requests)


BURST_READY = 1.1
"""How much longer than the plan's size the current one may take over the rest of the job
and still spend the allowance left at once."""


def burst_ready(shape: JobShape, size: int, planned: int) -> bool:
    """True once packs have about the size the plan wants: an allowance spent on the small
    packs of the quality ramp is spent at their higher cost per record (a low token limit
    then waits longer for its refill)."""
    return job_seconds(shape, size) <= BURST_READY * job_seconds(shape, planned)


def _candidate_sizes(largest: int) -> list[int]:
    """1..largest, every size up to 12, then about 12% apart (the job time is flat there)."""
    sizes = list(range(1, min(largest, 12) + 1))
    size = 12
    while size < largest:
        size = min(largest, max(size + 1, round(size * 1.12)))
        sizes.append(size)
    return sizes


CPU_WARM_UP = 16
DEFAULT_CPU_PER_REQUEST = 0.002
"""Client CPU of one request, measured on a 2-core machine (render, send, parse, store)."""


class SizePlanner:
    """What the plan is made from, learnt from the requests a job sends and gets back.

    ``blank_prompt(size)`` is the prompt tokens of a pack of ``size`` records with empty
    texts (its fixed part: instructions, rules, schema, keys), worked out once per size.
    """

    __slots__ = (
        "_blank",
        "_blank_prompt",
        "_cpu",
        "_cpu_per_request",
        "_cpu_read_at",
        "_cpu_start",
        "_sent",
        "_text",
        "latency",
    )

    def __init__(
        self, blank_prompt: Callable[[int], int], cpu: Callable[[], float] = time.process_time
    ) -> None:
        self._blank_prompt = blank_prompt
        self._blank: dict[int, int] = {}
        self._text = 0.0
        self._cpu = cpu
        self._cpu_start = cpu()
        self._sent = 0
        self._cpu_read_at = 0
        self._cpu_per_request = DEFAULT_CPU_PER_REQUEST
        self.latency = LatencyFit()

    def blank(self, size: int) -> int:
        found = self._blank.get(size)
        if found is None:
            found = self._blank[size] = self._blank_prompt(size)
        return found

    def sent(self, size: int, prompt_tokens: int) -> None:
        """A request of ``size`` records with ``prompt_tokens`` (estimated) went out."""
        self._sent += 1
        per_item = max(0.0, (prompt_tokens - self.blank(size)) / max(1, size))
        self._text = per_item if not self._text else 0.9 * self._text + 0.1 * per_item

    def answered(self, size: int, latency: float) -> None:
        self.latency.observe(size, latency)

    def prompt_tokens(self, size: int) -> float:
        """Estimated prompt tokens of a pack of ``size`` typical records."""
        return self.blank(size) + size * self._text

    @property
    def cpu_per_request(self) -> float:
        """This process's CPU seconds per request sent; a typical 2 ms until a few were sent
        (the first ones also pay for the connection and the client's start)."""
        if self._sent < CPU_WARM_UP:
            return DEFAULT_CPU_PER_REQUEST
        if self._sent >= self._cpu_read_at:  # the process clock is a slow call in some VMs
            self._cpu_per_request = (self._cpu() - self._cpu_start) / self._sent
            self._cpu_read_at = self._sent + CPU_WARM_UP
        return self._cpu_per_request
