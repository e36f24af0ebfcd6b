"""The public surface: ``llmbatch.__all__`` is exactly what the facade offers (as in httpx)."""

from __future__ import annotations
import __future__

import inspect
import types

import llmbatch
from llmbatch import _exceptions

INCLUDED_PRIVATE_MEMBERS = {"__version__"}


def public_members() -> set[str]:
    """Names bound in the facade that users may rely on: not private, not a submodule."""
    return {
        name
        for name, value in vars(llmbatch).items()
        if (not name.startswith("_") or name in INCLUDED_PRIVATE_MEMBERS)
        and not isinstance(value, types.ModuleType)
        and value is not __future__.annotations  # `from __future__ import annotations` binds a name
    }


def test_every_name_in_all_exists() -> None:
    missing = [name for name in llmbatch.__all__ if not hasattr(llmbatch, name)]
    assert missing == []


def test_all_has_no_duplicates() -> None:
    assert len(llmbatch.__all__) == len(set(llmbatch.__all__))


def test_every_public_member_is_listed() -> None:
    assert set(llmbatch.__all__) == public_members()


def test_public_classes_and_functions_are_listed() -> None:
    defined = {
        name
        for name, value in vars(llmbatch).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert defined
    assert defined <= set(llmbatch.__all__)


def test_every_exception_is_exported() -> None:
    assert set(_exceptions.__all__) <= set(llmbatch.__all__)
    for name in _exceptions.__all__:
        error = getattr(llmbatch, name)
        assert issubclass(error, llmbatch.LLMBatchError)


def test_exported_members_claim_the_public_module() -> None:
    # Classes and functions re-exported from private modules are what users see; they must
    # still be the very objects the internals use (no copies, no shadowing).
    from llmbatch import _pack as _packing
    from llmbatch import _task

    assert llmbatch.Task is _task.Task
    assert llmbatch.PACKERS is _packing.PACKERS


def test_version() -> None:
    assert isinstance(llmbatch.__version__, str)
    assert llmbatch.__version__.count(".") >= 2
