"""Command-line options shared by ``run`` and ``tune``, and the provider config built from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .providers import ProviderConfig

__all__ = ["local_model_options", "provider_config"]

F = TypeVar("F", bound=Callable[..., Any])

# Options that only some providers read; they travel in ProviderConfig.extra.
_EXTRA = ("model_path", "response_format", "schema_in_prompt", "n_threads", "n_ctx")


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
