"""The Ray workers' cache without Ray: the actor class is a plain class over ResultCache."""

from __future__ import annotations

from pathlib import Path

from llmbatch._store.cache import ResultCache
from llmbatch.ray.cache import CacheActor, SharedCache

SCOPE = ("openai:http://127.0.0.1:1/v1", "sim-1", "fp-1")


def test_the_proxy_has_what_the_runner_uses_of_a_result_cache() -> None:
    public = {name for name in dir(ResultCache) if not name.startswith("_")} - {"open", "db"}
    assert public <= set(dir(SharedCache)), public - set(dir(SharedCache))


def test_answers_go_in_and_out_by_item_text(tmp_path: Path) -> None:
    actor = CacheActor(str(tmp_path))
    actor.put_many(SCOPE, [("good morning", "buenos días"), ("thanks", "gracias")])
    assert actor.get_many(SCOPE, ["thanks", "unknown", "good morning"]) == {
        "thanks": "gracias",
        "good morning": "buenos días",
    }
    assert actor.get_many(("other", "sim-1", "fp-1"), ["thanks"]) == {}
    actor.flush()
    actor.close()


def test_entries_are_the_ones_a_single_process_run_writes_and_reads(tmp_path: Path) -> None:
    endpoint, model, fingerprint = SCOPE
    single = ResultCache.open(tmp_path, endpoint=endpoint, model=model, task_fingerprint=fingerprint)
    single.put_many([(single.key("written by one process"), {"label": "positive"})])
    actor = CacheActor(str(tmp_path))
    assert actor.get_many(SCOPE, ["written by one process"]) == {
        "written by one process": {"label": "positive"}
    }
    actor.put_many(SCOPE, [("written on Ray", {"label": "negative"})])
    actor.close()
    assert single.get_many([single.key("written on Ray")]) == {
        single.key("written on Ray"): {"label": "negative"}
    }
    single.close()
