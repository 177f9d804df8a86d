"""The fake Compute Engine REST API; one implementation, shipped for `--demo` (see agent/demo/fakes/gce.py)."""

from costwarden.agent.demo.fakes.gce import FakeGce, FakeInstance

__all__ = ["FakeGce", "FakeInstance"]
