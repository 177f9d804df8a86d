"""Billing exports: FOCUS 1.x read with DuckDB."""
