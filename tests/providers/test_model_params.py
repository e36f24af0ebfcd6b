"""Model parameters: what each model takes comes from the model table, never from its name.

OpenAI's reasoning models (the o-series, the gpt-5 family) reject ``max_tokens``
and a set ``temperature``; ``[params]`` pass provider options through, checked
against each provider's own list, into the body and the task's fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from _e2e_helpers import invoke, read_jsonl, review_records, run_args, write_jsonl
from _fakes import QuietJSONHandler
from llmbatch._exceptions import UsageError
from llmbatch._pack import PACKERS
from llmbatch._pricing import ModelTraits, PriceTable, model_traits
from llmbatch._task import Task
from llmbatch._types import Item, Request
from llmbatch.providers import Provider, ProviderConfig, create_provider
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.providers.base import batch_api
from llmbatch.providers.openai import OpenAIProvider, parse_chat_response
from llmbatch.sim.server import ThreadedServer


@pytest.fixture(autouse=True)
def _no_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "LLMBATCH_MODEL"):
        monkeypatch.delenv(name, raising=False)


def request_of(task: Task, pack: str = "json") -> Request:
    """A pack of two (a pack of one is a plain request, without the pack's response format)."""
    return PACKERS[pack].render(task, [Item(0, "r0", "a fine kettle"), Item(1, "r1", "a kettle")])


def body(provider: Provider, request: Request) -> dict[str, Any]:
    """The body the provider would send (its batch line holds the same one)."""
    line = batch_api(provider).batch_line("p0", request)
    sent = line["body"] if "body" in line else line["params"]
    assert isinstance(sent, dict)
    return sent


def openai(model: str, base_url: str | None = None) -> Provider:
    return create_provider("openai", ProviderConfig(model=model, base_url=base_url, api_key="k"))


def anthropic(model: str = "claude-sonnet-4-5") -> Provider:
    return create_provider("anthropic", ProviderConfig(model=model, api_key="k"))


TASK = Task(instructions="Label it.", output={"type": "string", "enum": ["good", "bad"]})


# -- the model table ----------------------------------------------------------------------


def test_the_table_says_which_models_reason() -> None:
    for model in ("o3", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano", "o4-mini-2025-04-16"):
        assert model_traits(model).reasoning, model
    assert model_traits("gpt-4o-mini") == ModelTraits()
    assert model_traits("no-such-model") == ModelTraits()
    assert not model_traits("claude-haiku-4-5").reasoning


def test_a_price_entry_keeps_its_source_and_date_out_of_the_price() -> None:
    table = PriceTable.load()
    for model in ("gpt-5", "o3", "claude-opus-4-5", "claude-haiku-4-5"):
        price = table.get(model)
        assert price is not None and price.input > 0, model


# -- max_tokens or max_completion_tokens ----------------------------------------------------


def test_the_official_endpoint_gets_max_completion_tokens() -> None:
    request = request_of(TASK)
    for model in ("gpt-5-mini", "gpt-4o-mini", "o3"):
        sent = body(openai(model), request)
        assert sent["max_completion_tokens"] == request.max_tokens, model
        assert "max_tokens" not in sent


def test_a_compatible_server_keeps_max_tokens_unless_the_table_says_otherwise() -> None:
    request = request_of(TASK)
    sent = body(openai("qwen2.5-7b", base_url="http://127.0.0.1:1/v1"), request)
    assert sent["max_tokens"] == request.max_tokens and "max_completion_tokens" not in sent
    # A proxy in front of OpenAI (base URL set) serving a reasoning model needs the new name too.
    proxied = body(openai("o4-mini", base_url="http://127.0.0.1:1/v1"), request)
    assert proxied["max_completion_tokens"] == request.max_tokens and "max_tokens" not in proxied


# -- temperature ----------------------------------------------------------------------------


def test_the_default_temperature_is_zero_where_the_model_takes_one() -> None:
    assert TASK.temperature is None  # not set by the task
    assert body(openai("gpt-4o-mini"), request_of(TASK))["temperature"] == 0.0
    assert (
        body(openai("local-model", base_url="http://127.0.0.1:1/v1"), request_of(TASK))["temperature"] == 0.0
    )


def test_a_reasoning_model_gets_no_default_temperature() -> None:
    for model in ("o3", "gpt-5-nano"):
        sent = body(openai(model), request_of(TASK))
        assert "temperature" not in sent and "top_p" not in sent, model


def test_a_set_temperature_for_a_model_that_takes_none_is_a_usage_error() -> None:
    task = Task(instructions="Label it.", temperature=0.2)
    with pytest.raises(UsageError) as caught:
        body(openai("o3"), request_of(task))
    message = str(caught.value)
    assert "o3" in message and "temperature" in message and "remove" in message
    assert "\n" not in message
    # top_p is a sampling parameter too.
    with pytest.raises(UsageError, match="top_p"):
        body(openai("gpt-5"), request_of(Task(instructions="x", params={"top_p": 0.5})))


def test_a_set_temperature_reaches_a_model_that_takes_one() -> None:
    task = Task(instructions="Label it.", temperature=0.7)
    assert body(openai("gpt-4.1"), request_of(task))["temperature"] == 0.7


def test_anthropic_sends_a_temperature_only_when_the_task_sets_one() -> None:
    assert "temperature" not in body(anthropic(), request_of(TASK, "tools"))
    task = Task(instructions="Label it.", temperature=0.3)
    assert body(anthropic(), request_of(task, "tools"))["temperature"] == 0.3
    with pytest.raises(UsageError, match="claude-opus-4-7"):
        body(anthropic("claude-opus-4-7"), request_of(task, "tools"))


# -- [params] --------------------------------------------------------------------------------


def test_openai_params_reach_the_body() -> None:
    params = {"top_p": 0.9, "seed": 7}
    sent = body(openai("gpt-4.1"), request_of(Task(instructions="x", params=params)))
    assert sent["top_p"] == 0.9 and sent["seed"] == 7
    reasoning = {"reasoning_effort": "minimal", "verbosity": "low"}
    sent = body(openai("gpt-5-mini"), request_of(Task(instructions="x", params=reasoning)))
    assert sent["reasoning_effort"] == "minimal" and sent["verbosity"] == "low"


def test_anthropic_params_reach_the_body() -> None:
    params = {"top_k": 40}
    assert body(anthropic(), request_of(Task(instructions="x", params=params), "tools"))["top_k"] == 40
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    request = request_of(Task(instructions="x", params=thinking), "numbered")
    sent = body(anthropic(), request)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    # The thinking budget counts toward max_tokens: the answer's budget stays whole on top of it.
    assert sent["max_tokens"] == request.max_tokens + 2048


@pytest.mark.parametrize(
    ("name", "params", "accepted"),
    [
        ("openai", {"top_k": 5}, "reasoning_effort, seed, top_p, verbosity"),
        ("openai", {"thinking": {"type": "enabled"}}, "reasoning_effort"),
        ("anthropic", {"seed": 1}, "thinking, top_k, top_p"),
        ("anthropic", {"reasoning_effort": "low"}, "thinking"),
    ],
)
def test_a_param_the_provider_does_not_take_is_a_usage_error_naming_what_it_takes(
    name: str, params: dict[str, Any], accepted: str
) -> None:
    provider = openai("gpt-4.1") if name == "openai" else anthropic()
    with pytest.raises(UsageError) as caught:
        body(provider, request_of(Task(instructions="x", params=params), "tools"))
    message = str(caught.value)
    assert f"provider {name}" in message and next(iter(params)) in message and accepted in message


@pytest.mark.parametrize(
    ("params", "words"),
    [({"seed": "7"}, "params.seed"), ({"seed": True}, "params.seed"), ({"top_p": "high"}, "params.top_p")],
)
def test_a_param_of_the_wrong_type_is_a_usage_error(params: dict[str, Any], words: str) -> None:
    with pytest.raises(UsageError, match=re.escape(words)):
        body(openai("gpt-4.1"), request_of(Task(instructions="x", params=params)))


def test_anthropic_thinking_with_a_forced_tool_is_a_usage_error() -> None:
    task = Task(instructions="x", params={"thinking": {"type": "enabled", "budget_tokens": 1024}})
    with pytest.raises(UsageError, match="--pack numbered"):
        body(anthropic(), request_of(task, "tools"))


def test_params_are_part_of_the_fingerprint() -> None:
    plain = Task(instructions="x")
    seeded = Task(instructions="x", params={"seed": 1})
    assert seeded.fingerprint != plain.fingerprint
    assert Task(instructions="x", params={"seed": 2}).fingerprint != seeded.fingerprint
    assert Task(instructions="x", params={"seed": 1}).fingerprint == seeded.fingerprint
    # A task without params hashes as it did before params existed (jobs and caches still match).
    assert "params" not in plain.fingerprint_parts()


def test_the_default_temperature_hashes_as_it_always_did_and_a_set_one_is_marked() -> None:
    default, explicit = Task(instructions="x"), Task(instructions="x", temperature=0.0)
    assert default.fingerprint_parts()["temperature"] == 0.0
    assert default.fingerprint != explicit.fingerprint  # some providers send it only when set


def test_a_task_file_passes_params_through(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'instructions = "x"\n[params]\nanswer_tokens = 30\nseed = 7\nreasoning_effort = "low"\n'
        '[params.thinking]\ntype = "enabled"\nbudget_tokens = 1024\n'
    )
    task = Task.from_file(path)
    assert task.answer_budget == 30 and task.temperature is None
    assert dict(task.params) == {
        "seed": 7,
        "reasoning_effort": "low",
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }


def test_a_task_file_param_that_is_not_json_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('instructions = "x"\n[params]\nseed = 1979-05-27\n')
    with pytest.raises(UsageError, match=r"params\.seed"):
        Task.from_file(path)


# -- whole jobs --------------------------------------------------------------------------------


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True
    bodies: list[dict[str, Any]]


class _Record(QuietJSONHandler):
    """Records each body and answers a chat completion whose answers are all 'good'."""

    server: _Recorder

    def do_POST(self) -> None:
        sent = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.server.bodies.append(sent)
        keys = sent["response_format"]["json_schema"]["schema"]["required"]
        completion = {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": sent["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(dict.fromkeys(keys, "good"))},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        self.reply_json(200, completion)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder(("127.0.0.1", 0), _Record)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def task_file(tmp_path: Path, params: str) -> Path:
    path = tmp_path / "label.toml"
    path.write_text(
        f'instructions = "Label it."\ninput = "{{text}}"\noutput = {{ type = "string" }}\n{params}'
    )
    return path


def test_a_job_sends_the_task_params(tmp_path: Path, recorder: _Recorder) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", review_records(3, seed=2))
    task = task_file(tmp_path, "[params]\nseed = 11\ntop_p = 0.5\n")
    base_url = f"http://127.0.0.1:{recorder.server_address[1]}/v1"
    out = tmp_path / "out.jsonl"
    args = run_args(source, task, out, tmp_path / "job", base_url, "--pack", "json", batch_size=3)
    result = invoke([*args, "--api-key", "k", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert [row["status"] for row in read_jsonl(out)] == ["ok"] * 3
    assert recorder.bodies and all(b["seed"] == 11 and b["top_p"] == 0.5 for b in recorder.bodies)
    assert all(b["temperature"] == 0.0 and "max_tokens" in b for b in recorder.bodies)


def test_a_job_with_a_param_the_provider_does_not_take_stops_before_sending(
    tmp_path: Path, sim_thread: Any
) -> None:
    sim: ThreadedServer = sim_thread()
    source = write_jsonl(tmp_path / "in.jsonl", review_records(3, seed=2))
    task = task_file(tmp_path, "[params]\ntop_k = 5\n")
    args = run_args(source, task, tmp_path / "out.jsonl", tmp_path / "job", sim.base_url)
    result = invoke([*args, "--api-key", "k", "--no-cache"])
    assert result.exit_code == 2, result.output
    assert "top_k" in result.output and "Traceback" not in result.output
    assert sim.stats()["requests"] == 0


def test_provider_classes_declare_what_they_accept() -> None:
    assert set(OpenAIProvider.accepted_params) == {"top_p", "seed", "reasoning_effort", "verbosity"}
    assert set(AnthropicProvider.accepted_params) == {"top_p", "top_k", "thinking"}


async def test_the_local_provider_checks_params_before_loading_a_model() -> None:
    local = create_provider("local", ProviderConfig())
    request = request_of(Task(instructions="x", params={"reasoning_effort": "low"}))
    with pytest.raises(
        UsageError, match=r"provider local does not take params\.reasoning_effort; it takes seed"
    ):
        await local.complete(request)


def test_a_flex_request_asks_for_the_tier_and_the_answer_says_which_tier_served_it() -> None:
    request = request_of(TASK)
    assert "service_tier" not in body(openai("gpt-5-mini"), request)
    flex = dataclasses.replace(request, service_tier="flex")
    assert body(openai("gpt-5-mini"), flex)["service_tier"] == "flex"
    answer = {"choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}], "usage": {}}
    assert parse_chat_response({**answer, "service_tier": "flex"}, 0.1, {}).service_tier == "flex"
    assert parse_chat_response(answer, 0.1, {}).service_tier == ""
