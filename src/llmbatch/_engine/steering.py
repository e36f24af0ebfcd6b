"""What a run learns as it goes and steers by, handed on whole from runner to runner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .._options import RunOptions
from .._pack.tokens import Calibration
from .._task import Task
from .answer_budget import AnswerBudget
from .control import ConcurrencyControl, LittleNeed, PackSizeControl
from .pack_plan import SizePlanner

__all__ = ["Clock", "Sleep", "Steering"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class Steering:
    """What a run learns as it goes and steers by: handed on whole to the next runner of
    the same job on the same provider (a Ray worker's next block), so it adapts once."""

    sizer: PackSizeControl
    flow: ConcurrencyControl
    calibration: Calibration
    """Prompt tokens as the provider counts them, against this process's estimate."""
    answers: AnswerBudget
    """Tokens per item's answer: the schema's bound at first, then what answers use."""
    need: LittleNeed
    """What the limits call for at the latency seen: where the concurrency ramps to."""
    plan: SizePlanner
    """What the rest of the job looks like: the pack size that finishes it soonest."""
    best_latency: dict[int, float] = field(default_factory=dict)
    """The fastest answer seen per pack size (the baseline latency growth is judged by)."""

    @classmethod
    def start(
        cls, task: Task, options: RunOptions, clock: Clock, blank_prompt: Callable[[int], int]
    ) -> Steering:
        return cls(
            sizer=PackSizeControl(
                start=options.batch_size or 5,
                max_batch=options.batch_size or options.max_batch_size,
                adaptive=options.batch_size is None,
                clock=clock,
            ),
            flow=ConcurrencyControl(
                options.concurrency,
                clock,
                start=options.concurrency if options.batch_size and options.concurrency else None,
            ),
            calibration=Calibration(),
            answers=AnswerBudget.for_task(task),
            need=LittleNeed(),
            plan=SizePlanner(blank_prompt),
        )
