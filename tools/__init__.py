"""Everything that talks to the outside world, and the guarded action layer. Never imports agent/."""
