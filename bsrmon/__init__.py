"""bsrmon: the collector daemon that keeps bsr's health and performance history."""
