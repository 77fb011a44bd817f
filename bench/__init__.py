"""Benchmarks: ``python -m bench`` (``make bench``) measures each scenario of docs/benchmarks.md beside a
baseline taken in the same run, on SQLite and PostgreSQL, and writes ``bench/results/latest.json``."""
