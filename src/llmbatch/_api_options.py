"""The keyword options of the Python API, and their checks.

``run``, ``arun``, ``iter_results`` and ``aiter_results`` take the same options.
``RunKwargs`` names and types them once (type checkers and editors read it through
``**options: Unpack[RunKwargs]``); ``check_options`` checks them at run time, before
anything is sent::

    >>> check_options("run", {"provder": "sim"})
    Traceback (most recent call last):
    TypeError: run() got an unexpected keyword argument 'provder' (did you mean 'provider'?)

A misspelt name is a ``TypeError``, as Python raises for any function; a bad
value is a ``UsageError`` naming every bad option at once.

Why one module: it is one table read three ways. Each option's type (``RunKwargs``), its
check (``_CHECKS``) and the providers that read it (``_READ_BY``, which the CLI's
``check_provider_options`` asks too) sit side by side, so that adding an option touches
one file.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from ._engine.policy import FLEX_FALLBACKS, RetryPolicy
from ._exceptions import UsageError
from ._options import CACHE_RETENTIONS, FLEX_TIMEOUT, RunOptions, parse_duration
from ._pack import PACKERS
from ._pricing import PriceTable
from ._store.cache import default_cache_dir
from ._task import Task
from .providers import ProviderConfig
from .providers.batch_shapes import BATCH_APIS

if TYPE_CHECKING:
    from .sim.config import SimConfig

__all__ = ["Plan", "RunKwargs", "check_options", "with_options_doc"]

F = TypeVar("F", bound=Callable[..., Any])


class RunKwargs(TypedDict, total=False):
    """Options (keyword only; every one may be left out):

    Provider

    - ``provider``: ``"openai"`` (the default: needs ``OPENAI_API_KEY``, ``api_key`` or
      ``base_url``), ``"anthropic"``, ``"local"`` (the bundled offline model), ``"sim"``
      (the simulator), or a provider registered in ``llmbatch.PROVIDERS``.
    - ``model``: the model name. Default: the provider's.
    - ``base_url``: the provider's endpoint, e.g. a local OpenAI-compatible server
      (openai: also the ``OPENAI_BASE_URL`` environment variable).
    - ``api_key``: the API key; better set ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``.
    - ``timeout``: seconds per request, above 0. Default: 120.
    - ``response_format`` (openai, sim): how the json pack asks for its schema,
      ``"json_schema"`` (the default) or ``"json_object"`` (llama-cpp-python's server).
    - ``schema_in_prompt`` (openai, sim): state the answer schema in the prompt too, for a
      server that constrains decoding without showing the model the schema (vLLM,
      llama.cpp). Default: False — hosted APIs show the response format's schema themselves.
    - ``cache_retention`` (openai, sim, anthropic): how long the provider keeps the prompt
      prefix cached: ``"in_memory"`` or ``"24h"`` (OpenAI's ``prompt_cache_retention``),
      ``"5m"`` or ``"1h"`` (Anthropic's ``cache_control.ttl``). Default: the provider's
      (Anthropic batch lines: ``"1h"``).
    - ``batch_api`` (openai, sim): which OpenAI-shaped batch API ``base_url`` speaks in
      batch mode: ``"openai"``, ``"groq"``, ``"together"``, ``"deepinfra"``. Default: known
      from the URL's host, else OpenAI's.
    - ``completion_window`` (openai, sim): the batch window asked for, ``"24h"`` (Groq takes
      up to ``"7d"``).
    - ``model_path`` (local): a GGUF file instead of the bundled model.
    - ``n_threads`` (local): CPU threads, 1 to 256. Default: one less than the cores.
    - ``n_ctx`` (local): context window in tokens, 256 to 131072. Default: 4096.
    - ``sim`` (sim): a ``llmbatch.sim.SimConfig`` (latency, limits, faults).

    Packing and pace

    - ``batch_size``: records per request, 1 to 1000; ``"auto"`` or None (the default)
      sizes packs adaptively, up to ``max_batch_size`` (1 to 1000, default 50).
    - ``concurrency``: a cap on requests in flight, 1 to 1000. Default: none — concurrency is
      ramped to what the provider's limits and its latency call for.
    - ``pack``: the pack format, a key of ``llmbatch.PACKERS``. Default: json where
      the provider has structured output.
    - ``max_attempts``: answer attempts per record, 1 to 20. Default: 3.
    - ``rpm``, ``tpm``: requests and tokens per minute, at least 1. Default: learnt
      from the provider's rate-limit headers.
    - ``seed``: seed of retry jitter and shuffling. Default: 0.
    - ``shuffle``: place records in packs in a seeded random order. Default: True.
    - ``mode``: ``"sync"`` (the default) sends requests now; ``"flex"`` sends them now at
      OpenAI's flex tier (batch prices, slower; the default ``timeout`` becomes 900);
      ``"batch"`` uses the provider's batch API (half price, results within 24 h), first
      polled after ``poll_interval`` seconds (above 0, default 5; then less often).
    - ``flex_fallback``: what records that keep meeting flex's "resource unavailable" past
      ``flex_deadline`` do: ``"sync"`` (the default: sent at the default tier, full price),
      ``"batch"`` (through the batch API) or ``"fail"`` (failed; a re-run asks again).
    - ``flex_deadline``: seconds, or ``"10m"``, ``"1.5h"``. Default: 10 minutes.
    - ``max_cost``: budget in USD over all runs of the job, above 0: the job stops
      (``BudgetReached``) before passing it. The model needs a price (``prices``).

    Job

    - ``job_dir``: the folder that keeps the job's state, so that running again
      resumes. Default: a temporary folder, removed at the end.
    - ``restart``: forget the state in ``job_dir`` and start over. Default: False.
    - ``retry_failed``: running again asks again the records that failed for reasons
      that may pass (timeouts, server errors, invalid answers). Default: True.
    - ``cache_dir``: the shared result cache. Default (None or True): the user's cache
      folder; False: no cache.
    - ``prices``: a JSON file of model prices over the shipped table (model → price).

    An unknown option is a ``TypeError`` that suggests the close match; a bad value
    is a ``UsageError``, raised before anything is sent.
    """

    provider: str | None
    model: str | None
    base_url: str | None
    api_key: str | None
    timeout: float
    response_format: Literal["json_schema", "json_object"] | None
    schema_in_prompt: bool | None
    cache_retention: Literal["in_memory", "24h", "5m", "1h"] | None
    batch_api: Literal["openai", "groq", "together", "deepinfra"] | None
    completion_window: str | None
    model_path: str | os.PathLike[str] | None
    n_threads: int | None
    n_ctx: int | None
    sim: SimConfig | None
    batch_size: int | Literal["auto"] | None
    max_batch_size: int
    concurrency: int | None
    pack: str | None
    max_attempts: int
    rpm: float | None
    tpm: float | None
    seed: int
    shuffle: bool
    mode: Literal["sync", "flex", "batch"]
    flex_fallback: Literal["sync", "batch", "fail"]
    flex_deadline: float | str
    poll_interval: float
    max_cost: float | None
    job_dir: str | os.PathLike[str] | None
    restart: bool
    retry_failed: bool
    cache_dir: str | os.PathLike[str] | bool | None
    prices: str | os.PathLike[str] | None


def with_options_doc(function: F) -> F:
    """Append the options' documentation to ``function``'s docstring.

    The four API functions share one text, so it is written once (``RunKwargs``)
    and still shown by ``help(llmbatch.run)``.
    """
    own = inspect.cleandoc(function.__doc__ or "")
    function.__doc__ = f"{own}\n\n{inspect.cleandoc(RunKwargs.__doc__ or '')}"
    return function


# -- checks -----------------------------------------------------------------------

Check = tuple[Callable[[Any], bool], str]
"""Whether a value is acceptable, and what an acceptable value is (for the message)."""


def _whole(low: int, high: int) -> Check:
    return (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
        f"a whole number from {low} to {high}",
    )


def _real(low: float, *, above: bool = False) -> Check:
    def accepts(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return False
        return value > low if above else value >= low

    return accepts, f"a number {'above' if above else 'of at least'} {low:g}"


def _text(expected: str) -> Check:
    return (lambda v: isinstance(v, str)), expected


def _path(expected: str) -> Check:
    return (lambda v: isinstance(v, str | os.PathLike)), expected


def _flag() -> Check:
    return (lambda v: isinstance(v, bool)), "True or False"


def _choice(*values: str) -> Check:
    named = [repr(v) for v in values]
    return (lambda v: v in values), " or ".join(named) if len(
        named
    ) < 3 else f"{', '.join(named[:-1])} or {named[-1]}"


def _or_none(check: Check) -> Check:
    accepts, expected = check
    return (lambda v: v is None or accepts(v)), f"{expected}, or None"


def _is_sim_config(value: Any) -> bool:
    # Imported only when the option is given: the simulator loads a web server.
    from .sim.config import SimConfig

    return isinstance(value, SimConfig)


def _batch_size(value: Any) -> bool:
    return value is None or value == "auto" or _whole(1, 1000)[0](value)


def _duration(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def _cache_dir(value: Any) -> bool:
    return value is None or isinstance(value, bool | str | os.PathLike)


_CHECKS: dict[str, Check] = {
    "provider": _or_none(_text("a provider name such as 'openai', 'anthropic', 'local' or 'sim'")),
    "model": _or_none(_text("a model name (a string)")),
    "base_url": _or_none(_text("a URL (a string)")),
    "api_key": _or_none(_text("a string")),
    "timeout": _real(0, above=True),
    "response_format": _or_none(_choice("json_schema", "json_object")),
    "schema_in_prompt": _or_none(_flag()),
    "cache_retention": _or_none(_choice(*CACHE_RETENTIONS)),
    "batch_api": _or_none(_choice(*BATCH_APIS)),
    "completion_window": _or_none(_text("a window such as '24h' or '7d'")),
    "model_path": _or_none(_path("the path of a GGUF file")),
    "n_threads": _or_none(_whole(1, 256)),
    "n_ctx": _or_none(_whole(256, 131_072)),
    "sim": (lambda v: v is None or _is_sim_config(v), "a llmbatch.sim.SimConfig, or None"),
    "batch_size": (_batch_size, "a whole number from 1 to 1000, 'auto' or None (adaptive)"),
    "max_batch_size": _whole(1, 1000),
    "concurrency": _or_none(_whole(1, 1000)),
    "pack": _or_none(_text("the name of a pack format")),  # which names: checked in check_options()
    "max_attempts": _whole(1, 20),
    "rpm": _or_none(_real(1)),
    "tpm": _or_none(_real(1)),
    "seed": _whole(-(2**63), 2**63 - 1),
    "shuffle": _flag(),
    "mode": _choice("sync", "flex", "batch"),
    "flex_fallback": _choice(*FLEX_FALLBACKS),
    "flex_deadline": (_duration, "seconds (at least 0) or a duration such as '10m' or '1.5h'"),
    "poll_interval": _real(0, above=True),
    "max_cost": _or_none(_real(0, above=True)),
    "job_dir": _or_none(_path("a folder (a str or Path)")),
    "restart": _flag(),
    "retry_failed": _flag(),
    "cache_dir": (_cache_dir, "a folder (a str or Path), True (the default cache) or False (no cache)"),
    "prices": _or_none(_path("the path of a JSON price file")),
}

# Options that only some built-in providers read (they travel in ProviderConfig.extra).
# Given to another built-in provider they would be ignored without a word, the very
# failure these checks exist to prevent; a plug-in provider may read any, so it is let be.
_READ_BY: dict[str, tuple[str, ...]] = {
    "response_format": ("openai", "sim"),
    "schema_in_prompt": ("openai", "sim"),
    "cache_retention": ("openai", "sim", "anthropic"),
    "batch_api": ("openai", "sim"),
    "completion_window": ("openai", "sim"),
    "model_path": ("local",),
    "n_threads": ("local",),
    "n_ctx": ("local",),
    "sim": ("sim",),
}
_BUILT_IN = frozenset({"openai", "anthropic", "gemini", "local", "sim"})
_SECRET = frozenset({"api_key"})


def unread_options(provider: str, given: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(option, the providers that read it) for each option given that the built-in ``provider``
    would ignore without a word (a plug-in provider may read any, so it is let be)."""
    if provider not in _BUILT_IN:
        return []
    return [
        (name, readers)
        for name, readers in _READ_BY.items()
        if given.get(name) is not None and provider not in readers
    ]


_RUN_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(RunOptions)) - {"policy"}


@dataclass(frozen=True, slots=True)
class Plan:
    """One call's checked options: what the provider and the job are built from."""

    provider: str
    config: ProviderConfig
    options: RunOptions
    job_dir: Path | None
    cache_dir: Path | None
    restart: bool
    prices: PriceTable


def check_options(caller: str, given: Mapping[str, Any]) -> Plan:
    """Check ``caller``'s keyword options and build what they describe.

    TypeError for an unknown name (with the close match), UsageError for bad values.
    """
    _reject_unknown(caller, given)
    problems = [
        f"{name} must be {expected}, not {_shown(name, value)}"
        for name, value in given.items()
        for accepts, expected in (_CHECKS[name],)
        if not accepts(value)
    ]
    provider = given.get("provider") or "openai"
    problems += [
        f"{name} is read only by the {' and '.join(readers)} provider, not {provider}: "
        f"pass provider={readers[0]!r} or leave {name} out"
        for name, readers in unread_options(provider, given)
    ]
    pack = given.get("pack")
    if isinstance(pack, str) and pack not in PACKERS:
        problems.append(
            f"unknown pack format {pack!r}{_did_you_mean(pack, PACKERS)}; choose from {', '.join(PACKERS)}"
        )
    if problems:
        raise UsageError(f"{caller}(): {'; '.join(problems)}")
    options = _run_options(given)
    cache_dir = given.get("cache_dir")
    job_dir = given.get("job_dir")
    return Plan(
        provider=provider,
        config=ProviderConfig(
            model=given.get("model"),
            base_url=given.get("base_url"),
            api_key=given.get("api_key"),
            timeout=options.timeout,
            extra={name: given[name] for name in _READ_BY if given.get(name) is not None},
        ),
        options=options,
        job_dir=None if job_dir is None else Path(job_dir),
        cache_dir=(
            default_cache_dir()
            if cache_dir is None or cache_dir is True
            else None
            if cache_dir is False
            else Path(cache_dir)
        ),
        restart=given.get("restart", False),
        prices=PriceTable.load(given.get("prices")),
    )


def _run_options(given: Mapping[str, Any]) -> RunOptions:
    """RunOptions from the options given; what is not given keeps RunOptions' default."""
    values = {name: value for name, value in given.items() if name in _RUN_OPTION_NAMES}
    if values.get("batch_size") == "auto":
        values["batch_size"] = None
    for name in ("timeout", "rpm", "tpm", "poll_interval", "max_cost"):
        if values.get(name) is not None:
            values[name] = float(values[name])
    policy = {name: given[name] for name in ("max_attempts", "flex_fallback") if name in given}
    if "flex_deadline" in given:
        policy["flex_deadline"] = parse_duration(given["flex_deadline"])
    if policy:
        values["policy"] = RetryPolicy(**policy)
    if values.get("mode") == "flex" and "timeout" not in given:
        values["timeout"] = FLEX_TIMEOUT
    return RunOptions(**values)


def _reject_unknown(caller: str, given: Mapping[str, Any]) -> None:
    unknown = [name for name in given if name not in _CHECKS]
    if not unknown:
        return
    task_fields = {f.name for f in dataclasses.fields(Task) if not f.name.startswith("_")}
    named = []
    for name in unknown:
        if name in task_fields:
            # A common slip: a Task field passed to run() would change nothing.
            named.append(f"{name!r} (it is a Task field: llmbatch.Task(..., {name}=...))")
        else:
            named.append(f"{name!r}{_did_you_mean(name, _CHECKS)}")
    if len(named) == 1:
        raise TypeError(f"{caller}() got an unexpected keyword argument {named[0]}")
    raise TypeError(f"{caller}() got unexpected keyword arguments {', '.join(named)}")


def _did_you_mean(name: str, known: Mapping[str, Any] | frozenset[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _shown(name: str, value: Any) -> str:
    """The bad value as the message shows it: short, and never a secret."""
    if name in _SECRET:
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
