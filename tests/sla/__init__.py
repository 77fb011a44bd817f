"""Tests of the SLA engine."""
