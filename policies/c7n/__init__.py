"""Cloud Custodian policies converted to Costwarden's (`costwarden policies import-c7n`): pure functions."""
