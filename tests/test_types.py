"""The status and failure-kind vocabularies: one enum each, stored and shown as plain text."""

from __future__ import annotations

import json
import sqlite3
from typing import TypeVar

from llmbatch import _exceptions
from llmbatch._engine.policy import MAY_PASS
from llmbatch._types import FailureKind, ItemStatus

T = TypeVar("T")


def _subclasses(cls: type[T]) -> list[type[T]]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def test_every_error_kind_is_a_failure_kind() -> None:
    kinds = {error.kind for error in _subclasses(_exceptions.ProviderError)}
    kinds |= {_exceptions.ItemError("x").kind, _exceptions.BatchLineLost("x", kind="canceled").kind}
    assert kinds <= set(FailureKind)


def test_may_pass_names_failure_kinds() -> None:
    assert set(MAY_PASS) <= set(FailureKind)
    assert FailureKind.INPUT not in MAY_PASS and FailureKind.BAD_REQUEST not in MAY_PASS


def test_members_are_their_strings() -> None:
    db = sqlite3.connect(":memory:")
    stored = db.execute("SELECT ?, typeof(?)", (ItemStatus.DONE, FailureKind.TOO_LARGE)).fetchone()
    assert stored == ("done", "text")
    assert json.dumps({FailureKind.MISSING: ItemStatus.FAILED}) == '{"missing": "failed"}'
    assert {"timeout": 1}[FailureKind.TIMEOUT] == 1
    assert f"{FailureKind.STOPPED}" == str(FailureKind.STOPPED) == "stopped"
