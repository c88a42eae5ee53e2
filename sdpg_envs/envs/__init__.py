"""Concrete environments (math here; code environments live beside it)."""
