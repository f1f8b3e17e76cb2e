"""Routing: which adapter, partner and mode serve a (county division code, item) pair."""
