"""What the simulated provider is like: speed, limits and how often it misbehaves.

Every fault rate defaults to 0, so ``SimConfig()`` is a fast, perfect model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["RATE_FIELDS", "SimConfig"]

BATCH_API_NAMES = ("openai", "groq", "together", "deepinfra")
"""The OpenAI-shaped batch APIs the simulator can speak (``_batches.BATCH_APIS``)."""

RATE_FIELDS = (
    "error_rate",
    "timeout_rate",
    "drop_rate",
    "corrupt_rate",
    "misnumber_rate",
    "truncate_rate",
    "malformed_rate",
)
"""The knobs that are probabilities, each in [0, 1]."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs of the simulator.

    Latency of a successful completion, in seconds, is
    ``(base_latency + per_input_token * prompt_tokens + per_output_token *
    completion_tokens) * time_scale``. Rate limits are per minute of real time
    and are not scaled. Faults are drawn from ``seed`` and the request itself,
    so the same requests see the same faults in any order.

        >>> SimConfig(seed=7, drop_rate=0.05, rate_limit_rpm=600).drop_rate
        0.05

    Request-level faults: ``error_rate`` (a 500/502/503), ``timeout_rate`` (the
    request hangs ``hang_seconds``). Pack faults, per item: ``drop_rate``,
    ``corrupt_rate``, ``misnumber_rate`` (numbered packs only); per pack:
    ``truncate_rate``, ``malformed_rate``. ``quota_exhausted`` answers every
    request with 429 ``insufficient_quota``. ``max_concurrency`` is how many
    completions run at once; the others wait in line.

    Answer quality (``_quality``): ``pack_accuracy_decay`` makes an item's answer
    wrong (but schema-valid) with probability
    ``min(1, decay × (b − 1)/49 × (1 + 4x(1 − x)))`` for an item at relative
    position ``x`` in a pack of ``b``; ``answer_shortening`` keeps only the first
    ``1 − shortening × (b − 1)/49`` of a free-text answer's words. Both are 0 for a
    single item, seeded by (seed, pack size, position, item text).

    Batch APIs (``_batches``): a batch is worked on ``batch_delay × time_scale``
    seconds after it is created; each line fails with ``batch_failure_rate`` and
    expires with ``batch_expire_rate``, seeded by the line's body. ``batch_api`` makes the
    OpenAI-shaped endpoints speak another provider's variant (``groq``, ``together``,
    ``deepinfra``; ``_batches.BATCH_APIS``).

    ``prompt_caching`` emulates OpenAI's automatic prompt cache on chat completions
    (``_prefix_cache``): prompts from 1,024 tokens on, cached in 128-token steps,
    reported as ``prompt_tokens_details.cached_tokens``. Off by default, so that
    token counts stay those of the request; batch lines are never cached.

    OpenAI's flex tier (a chat completion with ``"service_tier": "flex"``): a share
    ``flex_unavailable`` of flex requests is answered 429 "Resource Unavailable" (no
    retry-after, nothing charged against the rate limits; seeded by the request and how
    often it was sent, so a resent one gets through), the others take ``flex_latency``
    times as long. Every completion names its tier (``service_tier``: ``flex`` or
    ``default``), which is what the client prices it by.
    """

    model: str = "sim-1"
    base_latency: float = 0.0
    per_input_token: float = 0.0
    per_output_token: float = 0.0
    time_scale: float = 1.0
    seed: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 3600.0
    drop_rate: float = 0.0
    corrupt_rate: float = 0.0
    misnumber_rate: float = 0.0
    truncate_rate: float = 0.0
    malformed_rate: float = 0.0
    rate_limit_rpm: int | None = None
    rate_limit_tpm: int | None = None
    quota_exhausted: bool = False
    max_concurrency: int | None = None
    pack_accuracy_decay: float = 0.0
    answer_shortening: float = 0.0
    batch_failure_rate: float = 0.0
    batch_expire_rate: float = 0.0
    batch_delay: float = 0.0
    batch_api: str = "openai"
    prompt_caching: bool = False
    flex_unavailable: float = 0.0
    flex_latency: float = 2.0

    def __post_init__(self) -> None:
        for name in RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        for name in ("base_latency", "per_input_token", "per_output_token", "time_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("pack_accuracy_decay", "answer_shortening"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if self.hang_seconds < 0:
            raise ValueError("hang_seconds must not be negative")
        for name in ("rate_limit_rpm", "rate_limit_tpm", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no limit)")
        for name in ("batch_failure_rate", "batch_expire_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if self.batch_failure_rate + self.batch_expire_rate > 1.0:
            raise ValueError("batch_failure_rate + batch_expire_rate must not exceed 1")
        if self.batch_delay < 0:
            raise ValueError("batch_delay must not be negative")
        if self.batch_api not in BATCH_API_NAMES:
            raise ValueError(f"batch_api must be one of {', '.join(BATCH_API_NAMES)}, not {self.batch_api!r}")
        if not 0.0 <= self.flex_unavailable <= 1.0:
            raise ValueError(f"flex_unavailable must be between 0 and 1, not {self.flex_unavailable}")
        if self.flex_latency < 1.0:
            raise ValueError(f"flex_latency must be at least 1, not {self.flex_latency}")

    def as_dict(self) -> dict[str, object]:
        """The knobs by name (for ``/sim/stats``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
