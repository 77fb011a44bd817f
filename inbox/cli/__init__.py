"""The operator command line: ``inbox``."""
