"""Persistence: models, sessions, encryption at rest, the outbox and the call log."""
