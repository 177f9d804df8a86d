"""Google Cloud: Compute Engine inventory and guarded actions through google-cloud-compute, and
instances' GPU/CPU/network utilization from Cloud Monitoring through google-cloud-monitoring.

Nothing here imports the Google SDK at module import time: `google.cloud.compute_v1` costs
seconds and ~117 MB, so it is loaded the first time a client is built, which happens only when
`gcp.projects` is configured.
"""
