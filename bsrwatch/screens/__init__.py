"""Screens of bsrwatch, one per file."""
