"""Adapters: one module per party, each owning its protocol both ways."""
