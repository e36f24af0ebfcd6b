from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from click.testing import CliRunner

from llmbatch.sim import SimConfig
from llmbatch.sim import cli as sim_cli


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[SimConfig, str, int]]:
    calls: list[tuple[SimConfig, str, int]] = []
    monkeypatch.setattr(sim_cli, "serve_forever", lambda *args: calls.append(args))
    return calls


def test_flags_become_the_config(served: list[Any]) -> None:
    args = [
        "serve", "--host", "0.0.0.0", "--port", "0", "--model", "m", "--base-latency", "0.5",
        "--per-input-token", "0.001", "--per-output-token", "0.01", "--time-scale", "0.1",
        "--seed", "7", "--error-rate", "0.1", "--timeout-rate", "0.2", "--hang-seconds", "5",
        "--rate-limit-rpm", "60", "--rate-limit-tpm", "10000", "--drop-rate", "0.3",
        "--corrupt-rate", "0.4", "--misnumber-rate", "0.5", "--truncate-rate", "0.6",
        "--malformed-rate", "0.7", "--quota-exhausted", "--max-concurrency", "4",
    ]  # fmt: skip
    result = CliRunner().invoke(sim_cli.sim, args)
    assert result.exit_code == 0, result.output
    config, host, port = served[0]
    assert (host, port) == ("0.0.0.0", 0)
    assert config == SimConfig(
        model="m", base_latency=0.5, per_input_token=0.001, per_output_token=0.01, time_scale=0.1,
        seed=7, error_rate=0.1, timeout_rate=0.2, hang_seconds=5, rate_limit_rpm=60,
        rate_limit_tpm=10000, drop_rate=0.3, corrupt_rate=0.4, misnumber_rate=0.5,
        truncate_rate=0.6, malformed_rate=0.7, quota_exhausted=True, max_concurrency=4,
    )  # fmt: skip


def test_defaults(served: list[Any]) -> None:
    assert CliRunner().invoke(sim_cli.sim, ["serve"]).exit_code == 0
    assert served == [(SimConfig(), "127.0.0.1", 8765)]


@pytest.mark.parametrize(
    "args",
    [["--drop-rate", "1.5"], ["--error-rate", "-0.1"], ["--max-concurrency", "0"], ["--port", "70000"]],
)
def test_bad_values_are_clear_click_errors(served: list[Any], args: list[str]) -> None:
    result = CliRunner().invoke(sim_cli.sim, ["serve", *args])
    assert result.exit_code == 2
    assert f"Invalid value for '{args[0]}'" in result.output
    assert served == []


def test_serve_runs_until_sigterm() -> None:
    code = "from llmbatch.sim.cli import sim; sim()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", "--model", "sim-cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("llmbatch sim listening on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1]
        assert base_url.endswith("/v1")
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as response:
            assert json.load(response)["data"][0]["id"] == "sim-cli"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
