"""Per-token model prices from LiteLLM's price map, without importing litellm.

`import litellm` takes 4-5 s, while its price map is a plain JSON file shipped in the package
(`model_prices_and_context_window_backup.json`). We locate the package with
`importlib.util.find_spec` (which does not execute it) and `json.load` the file once, lazily,
so a sweep that never prices a token never pays for it. Nothing is fetched over the network.

Config overrides (negotiated prices) win over the map. A model found in neither is returned as
None; callers report it as "unpriced" with a warning, never as a silent $0.
"""

from __future__ import annotations

import importlib.util
import json
import os
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from costwarden.state.usage import MILLION, TokenPrice
from costwarden.tools.errors import ToolError

PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"
SOURCE = "LiteLLM price map (model_prices_and_context_window_backup.json)"
# provider prefixes people put in front of model names ("openai/gpt-4o-mini", "anthropic/claude-...")
PROVIDER_PREFIXES = ("openai", "azure", "anthropic", "bedrock", "vertex_ai", "gemini", "google", "mistral", "groq",
                     "together_ai", "fireworks_ai", "deepseek", "xai", "cohere", "openrouter", "litellm_proxy")


class ModelPriceOverride(BaseModel):
    """A negotiated price, in USD per million tokens (the unit price sheets use)."""

    model_config = ConfigDict(extra="forbid")
    input_per_1m: float = Field(ge=0, description="USD per million input tokens.")
    output_per_1m: float = Field(ge=0, description="USD per million output tokens.")
    cache_read_per_1m: float | None = Field(None, ge=0, description=(
        "USD per million cache-read tokens, if billed apart."))


@lru_cache(maxsize=1)
def load_price_map() -> dict[str, dict[str, Any]]:
    """The map, loaded once per process; a broken install is a one-line ToolError."""
    path = os.environ.get("COSTWARDEN_LLM_PRICE_MAP")
    if not path:
        spec = importlib.util.find_spec("litellm")
        if spec is None or not spec.submodule_search_locations:
            raise ToolError("LLM prices: the litellm package is not installed, so its price map is unavailable")
        path = os.path.join(list(spec.submodule_search_locations)[0], PRICE_MAP_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path}: cannot read the LLM price map: {exc}") from None
    if not isinstance(data, dict):
        raise ToolError(f"{path}: the LLM price map is not a JSON object")
    data.pop("sample_spec", None)
    return data


def normalise_model(name: str) -> str:
    """'openai/gpt-4o-mini' -> 'gpt-4o-mini'; trims whitespace and case of the provider prefix."""
    name = name.strip()
    head, sep, rest = name.partition("/")
    if sep and head.lower() in PROVIDER_PREFIXES and rest:
        return rest
    return name


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


class PriceMap:
    """Look up a model's per-token price: overrides, then the exact name, then normalised forms."""

    def __init__(self, overrides: dict[str, ModelPriceOverride] | None = None,
                 price_map: dict[str, dict[str, Any]] | None = None) -> None:
        self._overrides = {k: v for k, v in (overrides or {}).items()}
        self._map = price_map
        self._cache: dict[str, TokenPrice | None] = {}

    @property
    def map(self) -> dict[str, dict[str, Any]]:
        if self._map is None:
            self._map = load_price_map()
        return self._map

    def price(self, model: str) -> TokenPrice | None:
        if model not in self._cache:
            self._cache[model] = self._lookup(model)
        return self._cache[model]

    def _lookup(self, model: str) -> TokenPrice | None:
        short = normalise_model(model)
        for key in (model, short):
            o = self._overrides.get(key)
            if o is not None:
                return TokenPrice(model=short, input_usd=Decimal(str(o.input_per_1m)) / MILLION,
                                  output_usd=Decimal(str(o.output_per_1m)) / MILLION,
                                  cache_read_usd=(Decimal(str(o.cache_read_per_1m)) / MILLION
                                                  if o.cache_read_per_1m is not None else None),
                                  source="config override (billing.price_overrides)")
        for key in dict.fromkeys((model, short, short.lower(), f"{model.partition('/')[0]}/{short}")):
            entry = self.map.get(key)
            if not isinstance(entry, dict):
                continue
            inp, out = _dec(entry.get("input_cost_per_token")), _dec(entry.get("output_cost_per_token"))
            if inp is None or out is None:
                continue
            return TokenPrice(model=key, input_usd=inp, output_usd=out,
                              cache_read_usd=_dec(entry.get("cache_read_input_token_cost")), source=SOURCE)
        return None
