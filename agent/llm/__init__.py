"""The LLM analyst: litellm-backed explanations, classification and prioritisation.

Importing this package does not import litellm (that costs seconds); the first completion does.
"""

from costwarden.agent.llm.analyst import Analysis, analyse, default_priority
from costwarden.agent.llm.client import LlmCallFailed, LlmClient, LlmStopped, llm_spend

__all__ = ["Analysis", "LlmCallFailed", "LlmClient", "LlmStopped", "analyse", "default_priority", "llm_spend"]
