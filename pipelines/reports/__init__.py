"""Renderings of results: the scorecard page, the batch summary and spreadsheet-safe cells."""
