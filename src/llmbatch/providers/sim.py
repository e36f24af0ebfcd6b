"""``--provider sim``: the simulator started in-process on 127.0.0.1, reached over real HTTP.

It is the OpenAI-compatible provider pointed at a private simulator, so demos
and tests go through the same SDK, transport and error mapping as a hosted API.
Simulator knobs come from ``ProviderConfig.extra["sim"]`` (a ``SimConfig``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .base import ProviderConfig, register
from .openai import OpenAIProvider

__all__ = ["SimProvider"]

DEMO_BASE_LATENCY = 0.05
DEMO_PER_INPUT_TOKEN = 0.00002
DEMO_PER_OUTPUT_TOKEN = 0.001
"""A little latency so that the demo's throughput figures mean something."""


@register("sim")
class SimProvider(OpenAIProvider):
    def __init__(self, config: ProviderConfig) -> None:
        from ..sim import SimConfig

        sim_config = config.extra.get("sim")
        if sim_config is None:
            sim_config = SimConfig(
                model=config.model or "sim-1",
                base_latency=DEMO_BASE_LATENCY,
                per_input_token=DEMO_PER_INPUT_TOKEN,
                per_output_token=DEMO_PER_OUTPUT_TOKEN,
            )
        self.sim_config = sim_config
        super().__init__(
            dataclasses.replace(
                config, model=sim_config.model, base_url="http://127.0.0.1:0/v1", api_key="sim"
            )
        )
        # The simulator takes OpenAI's prompt_cache_key (and counts it in /sim/stats).
        self.capabilities = dataclasses.replace(self.capabilities, prompt_cache_key=True)
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return "sim"

    async def start(self) -> None:
        from ..sim import SimServer

        if self._server is None:
            self._server = SimServer(self.sim_config, host="127.0.0.1", port=0)
            await self._server.__aenter__()
            self.base_url = self._server.base_url
        await super().start()

    async def aclose(self) -> None:
        await super().aclose()
        if self._server is not None:
            await self._server.__aexit__(None, None, None)
            self._server = None
