"""cluster package (being written)."""
