"""Canonical message, code tables, field maps and validators."""
