"""The fake Cloud Monitoring v3 MetricService (gRPC); one implementation, shipped for `--demo`
(see agent/demo/fakes/monitoring.py)."""

from costwarden.agent.demo.fakes.monitoring import FakeMonitoring

__all__ = ["FakeMonitoring"]
