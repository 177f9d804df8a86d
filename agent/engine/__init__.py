"""The sweep engine: the LangGraph graph and its nodes, one sweep, execution, reconciliation, approvals."""
