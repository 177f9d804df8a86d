"""The LiteLLM proxy's management API: budgets and rate limits on teams and keys (the cap-spend action)."""
