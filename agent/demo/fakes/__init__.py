"""Small local fakes of outside APIs, shipped so `--demo` runs the real client code with no cloud.

Tests import them through tests/fakes/, so the demo and the tests exercise one implementation.
They bind 127.0.0.1 only and keep everything in memory.
"""
