"""Costwarden's memory: provider-neutral domain types and the SQLAlchemy store.

Everything Costwarden decides is written here as it happens, so an audit can be
replayed and a crash never loses a decision.
"""
