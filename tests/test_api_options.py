"""The Python API's keyword options: one list (RunKwargs), its checks, and what they build."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import llmbatch
from llmbatch import _api_options
from llmbatch._api_options import RunKwargs, check_options
from llmbatch._options import RunOptions
from llmbatch.cli import options as _cli_options
from llmbatch.sim import SimConfig

OPTIONS = set(RunKwargs.__annotations__)


def test_every_run_option_is_a_keyword_of_the_python_api() -> None:
    # A field added to RunOptions (a CLI option) must reach Python users too, not be
    # unreachable until someone notices. ``policy`` is offered as max_attempts.
    fields = {f.name for f in dataclasses.fields(RunOptions)} - {"policy"}
    assert fields <= OPTIONS
    assert "max_attempts" in OPTIONS


def test_every_provider_specific_option_of_the_cli_is_a_keyword() -> None:
    assert set(_cli_options._EXTRA) <= OPTIONS


def test_every_keyword_has_a_check_and_documentation() -> None:
    assert set(_api_options._CHECKS) == OPTIONS
    doc = RunKwargs.__doc__ or ""
    missing = [name for name in OPTIONS if f"``{name}``" not in doc]
    assert missing == []


def test_defaults_are_runoptions_defaults() -> None:
    plan = check_options("run", {})
    assert plan.options == RunOptions()
    assert plan.provider == "openai"
    assert plan.config == llmbatch.ProviderConfig(timeout=RunOptions().timeout)
    assert plan.job_dir is None and plan.restart is False


def test_each_option_lands_where_it_is_read(tmp_path: Path) -> None:
    sim = SimConfig(base_latency=0.0)
    plan = check_options(
        "run",
        {
            "provider": "sim",
            "model": "m",
            "base_url": "http://127.0.0.1:1/v1",
            "api_key": "k",
            "timeout": 7,
            "response_format": "json_object",
            "sim": sim,
            "batch_size": 4,
            "max_batch_size": 9,
            "concurrency": 3,
            "pack": "numbered",
            "max_attempts": 5,
            "rpm": 60,
            "tpm": 1000.0,
            "seed": 11,
            "shuffle": False,
            "mode": "batch",
            "poll_interval": 0.5,
            "max_cost": 2,
            "job_dir": str(tmp_path / "job"),
            "restart": True,
            "retry_failed": False,
            "cache_dir": tmp_path / "cache",
        },
    )
    assert plan.provider == "sim"
    assert plan.config == llmbatch.ProviderConfig(
        model="m",
        base_url="http://127.0.0.1:1/v1",
        api_key="k",
        timeout=7.0,
        extra={"response_format": "json_object", "sim": sim},
    )
    options = plan.options
    assert (options.batch_size, options.max_batch_size, options.concurrency, options.pack) == (
        4,
        9,
        3,
        "numbered",
    )
    assert options.policy.max_attempts == 5
    assert (options.timeout, options.rpm, options.tpm, options.seed, options.shuffle) == (
        7.0,
        60.0,
        1000.0,
        11,
        False,
    )
    assert (options.mode, options.poll_interval, options.max_cost) == ("batch", 0.5, 2.0)
    assert options.retry_failed is False
    assert plan.job_dir == tmp_path / "job" and plan.restart is True
    assert plan.cache_dir == tmp_path / "cache"


def test_local_model_options_go_to_the_local_provider(tmp_path: Path) -> None:
    plan = check_options(
        "run", {"provider": "local", "model_path": tmp_path / "m.gguf", "n_threads": 2, "n_ctx": 2048}
    )
    assert plan.config.extra == {"model_path": tmp_path / "m.gguf", "n_threads": 2, "n_ctx": 2048}


@pytest.mark.parametrize(("cache_dir", "none"), [(False, True), (True, False), (None, False)])
def test_cache_dir_false_disables_the_cache(cache_dir: bool | None, none: bool) -> None:
    assert (check_options("run", {"cache_dir": cache_dir}).cache_dir is None) is none


def test_a_plug_in_provider_may_read_any_provider_option() -> None:
    # Only built-in providers are known not to read n_ctx; a registered one might.
    assert check_options("run", {"provider": "my-plugin", "n_ctx": 1024}).config.extra == {"n_ctx": 1024}


def test_an_unreadable_price_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(llmbatch.UsageError, match="cannot read prices file"):
        check_options("run", {"prices": tmp_path / "nope.json"})
