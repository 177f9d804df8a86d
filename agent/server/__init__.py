"""The long-running daemon: scheduler, leader election, HTTP endpoints, Slack transports, metrics, logs."""
