"""Placeholder: test functions are being written."""
