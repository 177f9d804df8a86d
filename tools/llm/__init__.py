"""LLM token usage: OpenTelemetry GenAI spans and LiteLLM spend logs, and their collector."""
