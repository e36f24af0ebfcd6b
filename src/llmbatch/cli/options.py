"""Command-line options shared by ``run`` and ``tune``, and the provider config built from them."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._api_options import unread_options
from .._exceptions import UsageError
from .._options import parse_duration
from ..providers import ProviderConfig

__all__ = ["default_provider", "local_model_options", "provider_config", "to_seconds"]


def to_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """An option's duration in seconds (``90``, ``90s``, ``10m``, ``1.5h``, ``2d``): a click
    callback, so that a bad one is a usage error naming the option."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


F = TypeVar("F", bound=Callable[..., Any])

# Options that only some providers read; they travel in ProviderConfig.extra.
_EXTRA = (
    "model_path",
    "response_format",
    "schema_in_prompt",
    "cache_retention",
    "batch_api",
    "completion_window",
    "n_threads",
    "n_ctx",
)


def local_model_options(command: F) -> F:
    """``--model-path``, ``--threads`` and ``--n-ctx``: how the local provider loads its model."""
    for option in reversed(
        (
            click.option(
                "--model-path", type=click.Path(dir_okay=False, exists=True), help="GGUF file (local)."
            ),
            click.option(
                "--threads",
                "n_threads",
                type=click.IntRange(1, 256),
                help="CPU threads for the local model. Default: one less than the cores.",
            ),
            click.option(
                "--n-ctx",
                type=click.IntRange(256, 131_072),
                help="Context window of the local model, in tokens. Default: 4096.",
            ),
        )
    ):
        command = option(command)
    return command


def provider_config(opts: dict[str, Any]) -> ProviderConfig:
    """The provider's config from parsed options (provider-specific ones go to ``extra``)."""
    return ProviderConfig(
        model=opts["model"],
        base_url=opts["base_url"],
        api_key=opts["api_key"],
        timeout=opts["timeout"],
        extra={key: opts[key] for key in _EXTRA if opts.get(key) is not None},
    )


def check_provider_options(provider: str, opts: dict[str, Any]) -> None:
    """A usage error naming each option given that ``provider`` would ignore (``--response-format``
    with anthropic, ``--cache-retention`` with gemini): the same rule as the Python API's."""
    problems = [
        f"{_FLAGS.get(name, '--' + name.replace('_', '-'))} is read only by the "
        f"{' and '.join(readers)} provider, not {provider}"
        for name, readers in unread_options(provider, opts)
    ]
    if problems:
        raise UsageError("; ".join(problems))


_FLAGS = {"n_threads": "--threads"}


def default_provider(opts: dict[str, Any], *, notice: Callable[[str], None]) -> str:
    """The provider when ``--provider`` is not given, the one rule for every command: anthropic
    or gemini when only that provider's key is set, openai when an API key or endpoint is
    configured, else the bundled local model (said through ``notice`` unless ``--quiet``)."""
    if opts["model_path"]:
        return "local"
    if os.environ.get("ANTHROPIC_API_KEY") and not os.environ.get("OPENAI_API_KEY"):
        return "anthropic"
    if os.environ.get("GEMINI_API_KEY") and not os.environ.get("OPENAI_API_KEY"):
        return "gemini"
    configured = opts["api_key"] or opts["base_url"]
    if configured or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    from ..providers.local import INSTALL_HINT, local_available

    if not local_available():
        raise UsageError(f"no API key or base URL is set, and {INSTALL_HINT}")
    if not opts["quiet"]:
        notice(
            "no API key or base URL set: using the bundled local model (SmolLM2-135M, offline). It is "
            "small, meant for trying llmbatch without a key, and its answers are often wrong. For real "
            "answers run the same command with OPENAI_API_KEY set (and --model gpt-4o-mini), "
            "ANTHROPIC_API_KEY, or --base-url http://HOST:PORT/v1 for any OpenAI-compatible server"
        )
    return "local"
