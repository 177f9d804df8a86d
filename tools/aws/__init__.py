"""AWS: boto3 clients behind the dry-run hook, inventory, metrics and guarded actions."""
