"""Retry policy: one shape, configured per route (after dramatiq's Retries middleware)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

_FIELDS = ("max_attempts", "min_backoff", "max_backoff", "jitter")


@dataclass(frozen=True)
class RetryPolicy:
    """max_attempts counts every try, the first included; backoffs are seconds."""

    max_attempts: int = 10
    min_backoff: float = 5.0
    max_backoff: float = 1800.0
    jitter: float = 0.2

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed try: exponential, capped, jittered."""
        base = min(self.max_backoff, self.min_backoff * (2 ** max(0, attempts - 1)))
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def merged(self, overrides: dict[str, Any] | None) -> RetryPolicy:
        if not overrides:
            return self
        return replace(self, **policy_fields(overrides, where="retry"))


def policy_fields(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate a mapping of policy fields, naming the key at fault."""
    unknown = set(raw) - set(_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown retry setting(s) {sorted(unknown)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "max_attempts":
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}.max_attempts: must be a whole number >= 1")
            out[key] = value
        else:
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{where}.{key}: must be a number >= 0")
            out[key] = float(value)
    if out.get("jitter", 0) > 1:
        raise ValueError(f"{where}.jitter: must be between 0 and 1")
    return out
