"""``--threads`` and ``--n-ctx`` reach the local provider; its thread default leaves a core free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from llmbatch.cli.options import local_model_options, provider_config
from llmbatch.providers import ProviderConfig
from llmbatch.providers.local import LocalProvider, default_threads

BASE = {"model": None, "base_url": None, "api_key": None, "timeout": 30.0}


@click.command()
@local_model_options
def _probe(**opts: Any) -> None:
    config = provider_config({**BASE, **opts})
    click.echo(sorted(config.extra.items()))


def test_threads_and_context_travel_in_the_provider_extra() -> None:
    result = CliRunner().invoke(_probe, ["--threads", "3", "--n-ctx", "2048"])
    assert result.output.strip() == "[('n_ctx', 2048), ('n_threads', 3)]"


def test_unset_options_stay_out_of_the_extra() -> None:
    assert CliRunner().invoke(_probe, []).output.strip() == "[]"


def test_a_bad_thread_count_is_a_one_line_usage_error() -> None:
    result = CliRunner().invoke(_probe, ["--threads", "0"])
    assert result.exit_code == 2
    assert "--threads" in result.output


def test_the_local_provider_uses_the_options_without_loading_the_model() -> None:
    provider = LocalProvider(ProviderConfig(extra={"n_threads": 2, "n_ctx": 1024}))
    assert (provider.n_threads, provider.n_ctx, provider.capabilities.context_tokens) == (2, 1024, 1024)


@pytest.mark.parametrize(("cores", "threads"), [(None, 1), (1, 1), (2, 1), (8, 7)])
def test_default_threads_leave_one_core_free(
    monkeypatch: pytest.MonkeyPatch, cores: Any, threads: int
) -> None:
    monkeypatch.setattr("llmbatch.providers.local.os.cpu_count", lambda: cores)
    assert default_threads() == threads


def test_run_and_tune_both_offer_the_options() -> None:
    from llmbatch.cli import main

    for command in ("run", "tune"):
        text = CliRunner().invoke(main, [command, "--help"]).output
        assert "--threads" in text and "--n-ctx" in text, command


def test_the_no_key_default_says_the_local_model_is_small_and_how_to_use_a_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmbatch.providers.local as local
    from _e2e_helpers import EXAMPLES, invoke

    monkeypatch.setattr(local, "local_available", lambda: True)
    unset = {
        name: None for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")
    }
    # A missing input stops the run right after the provider is chosen: nothing loads.
    result = invoke(
        ["run", str(tmp_path / "none.jsonl"), "--task", str(EXAMPLES / "sentiment.toml")],
        env=unset,  # type: ignore[arg-type]
    )
    assert result.exit_code == 2
    notice = result.stderr
    assert "bundled local model" in notice and "small" in notice and "trying" in notice
    assert "OPENAI_API_KEY" in notice and "--base-url" in notice and "run the same command" in notice


def test_schema_in_prompt_reaches_the_openai_provider_and_the_local_one_always_has_it() -> None:
    from llmbatch.providers.openai import OpenAIProvider

    config = provider_config({**BASE, "api_key": "sk-test", "schema_in_prompt": True})
    assert config.extra == {"schema_in_prompt": True}
    assert OpenAIProvider(config).capabilities.schema_in_prompt
    assert not OpenAIProvider(provider_config({**BASE, "api_key": "sk-test"})).capabilities.schema_in_prompt
    assert (
        LocalProvider.capabilities.schema_in_prompt
    )  # llama.cpp's grammar: the model never reads the schema


def test_the_provider_follows_the_only_key_that_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmbatch.cli.options import default_provider

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    opts = {"model_path": None, "api_key": None, "base_url": None, "quiet": True}
    for key, provider in (("ANTHROPIC_API_KEY", "anthropic"), ("GEMINI_API_KEY", "gemini")):
        monkeypatch.setenv(key, "k")
        assert default_provider(opts, notice=print) == provider
        monkeypatch.setenv("OPENAI_API_KEY", "k")  # with OpenAI's key too, openai wins
        assert default_provider(opts, notice=print) == "openai"
        monkeypatch.delenv("OPENAI_API_KEY")
        monkeypatch.delenv(key)
