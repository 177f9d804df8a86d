"""Reference data shipped in policies/data/, read once per process and only through here.

accelerators.yml holds GPU and Neuron specs per instance / machine type, which the
training-hardware-for-inference detector reasons with. It ships with the policies rather than with
tools/: policies never import tools (DESIGN.md), and prices, which do live in tools/data/, reach a
detector through the sweep's price book instead.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    with resources.files("costwarden.policies").joinpath("data", name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def accelerator_specs() -> dict[str, Any]:
    """The shipped accelerator specs: `accelerators` (name -> memory_gib, fp16_tflops, source, as_of),
    `instances` (type -> accelerator, count, source, as_of) and `alternatives` (provider -> the
    inference-class types to propose). One shared parse: copy a part before changing it."""
    return _load("accelerators.yml")
