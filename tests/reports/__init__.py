"""Tests of inbox.reports."""
