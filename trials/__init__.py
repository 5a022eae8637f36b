"""trials package (being written)."""
