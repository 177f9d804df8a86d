"""Billing aggregations pushed down to the warehouse that already holds the export (Athena, BigQuery).

A FOCUS export of terabytes is not downloaded: each question the billing path asks is one query
definition (queries.py), transpiled by sqlglot to the warehouse's dialect, run there, and only the
small result comes back. Bytes scanned are counted and capped per sweep (runners.ScanLedger).
"""
