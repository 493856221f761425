"""review (issue 5)."""
