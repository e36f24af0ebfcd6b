"""Providers: one module per backend, registered by name in ``PROVIDERS``.

``MockProvider`` (``providers.mock``) is the one provider not registered: it answers
through a function given in code, so it is no ``--provider`` choice.
"""

from __future__ import annotations

from .base import PROVIDERS, Capabilities, Provider, ProviderConfig, create_provider, load_builtin, register
from .mock import MockProvider

__all__ = [
    "PROVIDERS",
    "Capabilities",
    "MockProvider",
    "Provider",
    "ProviderConfig",
    "create_provider",
    "load_builtin",
    "register",
]
