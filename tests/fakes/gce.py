"""The fake Compute Engine REST API; one implementation, shipped for `--demo` (see agent/demo_fakes/gce.py)."""

from agent.demo_fakes.gce import FakeGce, FakeInstance

__all__ = ["FakeGce", "FakeInstance"]
