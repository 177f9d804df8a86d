"""A Costwarden process that dies on purpose (tests/test_crash_restart.py)."""
