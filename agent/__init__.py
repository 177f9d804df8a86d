"""The Costwarden daemon: CLI, settings, scheduler and the LangGraph sweep."""

__version__ = "0.1.0"
