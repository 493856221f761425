"""coaching (issue 5)."""
