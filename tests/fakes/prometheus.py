"""The fake Prometheus HTTP API; one implementation, shipped for `--demo` (see agent/demo/fakes/prometheus.py)."""

from costwarden.agent.demo.fakes.prometheus import FakePrometheus

__all__ = ["FakePrometheus"]
