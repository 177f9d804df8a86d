"""The demo estate: moto, fake GCP and Prometheus in-process, demo billing data. Production code never imports it."""
