"""Actions of the policy vocabulary. Each names the guarded tool in tools/ that carries it out."""
