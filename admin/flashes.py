"""Messages shown where the operator is looking: a form far down a page redirects to
its section (``#anchor``) and its messages are shown in that section, not at the top.

A view calls ``flashes_at(anchor)`` before redirecting; the messages flashed so far in
the request get the category ``"<kind>@<anchor>"``. The page's layout shows messages
without an anchor at the top, and ``section_flashes(anchor)`` (templates/_macros.html)
shows an anchor's own.
"""

from __future__ import annotations

from flask import session


def flashes_at(anchor: str) -> None:
    """Tag this request's flashed messages with the section they belong to."""
    queued = session.get("_flashes") or []
    tagged = [(cat if "@" in cat else f"{cat}@{anchor}", msg) for cat, msg in queued]
    if tagged != queued:
        session["_flashes"] = tagged


def kind_of(category: str) -> str:
    """``error@divisions`` → ``error`` (the CSS class)."""
    return category.split("@", 1)[0]


def anchor_of(category: str) -> str:
    return category.split("@", 1)[1] if "@" in category else ""
