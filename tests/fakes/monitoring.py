"""The fake Cloud Monitoring v3 MetricService (gRPC); one implementation, shipped for `--demo`
(see agent/demo_fakes/monitoring.py)."""

from agent.demo_fakes.monitoring import FakeMonitoring

__all__ = ["FakeMonitoring"]
