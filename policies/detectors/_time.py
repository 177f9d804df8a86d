"""Helpers shared by detectors (not a detector: modules starting with '_' are not auto-imported)."""

from __future__ import annotations

from datetime import datetime


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 timestamp from a resource's attrs, or None when absent or malformed."""
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
