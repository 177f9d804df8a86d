"""The fake Prometheus HTTP API; one implementation, shipped for `--demo` (see agent/demo_fakes/prometheus.py)."""

from agent.demo_fakes.prometheus import FakePrometheus

__all__ = ["FakePrometheus"]
