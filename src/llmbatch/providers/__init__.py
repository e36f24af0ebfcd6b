"""Providers: one module per backend, registered by name in ``PROVIDERS``.

``MockProvider`` (``providers.mock``) is the one provider not registered: it answers
through a function given in code, so it is no ``--provider`` choice.
"""

from __future__ import annotations

import importlib

from .base import PROVIDERS, Provider, ProviderConfig, create_provider, register
from .mock import MockProvider

__all__ = ["PROVIDERS", "MockProvider", "Provider", "ProviderConfig", "create_provider", "register"]

# Built-in providers, imported on first use so that an optional dependency
# (llama-cpp-python, anthropic) is only needed by the provider that uses it.
_BUILTIN = ("openai", "anthropic", "sim", "local")


def load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(f"{__name__}.{module}")
