"""The `costwarden` command line, one module per command group."""
