"""Widgets of bsrwatch: they draw view models, they hold no state of their own."""
