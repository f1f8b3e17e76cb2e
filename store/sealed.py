"""Column types that keep personal data out of the database in plaintext.

``Sealed`` stores a text value sealed by the hub's ``DataCipher`` (AES-GCM, random
nonce) and opens it on read, so models and call sites keep handling plain ``str``.
``BlindIndex`` stores a keyed hash (HMAC) of a value, for the few columns that must be
searched by equality (the audit's actor and target): ``col == "x"`` hashes ``"x"`` too.

The cipher is bound to an engine's dialect (``bind_cipher``) because a type's bind and
result processors only see the dialect; one process can hold several hubs, each with
its own key and engine. A value written through an engine with no cipher bound is an
error, never plaintext.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, LargeBinary, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from store.crypto import DataCipher

_ATTR = "cityhub_cipher"


class NoCipher(RuntimeError):
    """A sealed column was used through an engine that has no data cipher bound."""


def bind_cipher(engine: Engine, cipher: DataCipher) -> None:
    """Let ``engine`` seal and open ``Sealed`` columns and hash ``BlindIndex`` ones."""
    setattr(engine.dialect, _ATTR, cipher)


def cipher_of(dialect: Dialect) -> DataCipher:
    cipher = getattr(dialect, _ATTR, None)
    if cipher is None:
        raise NoCipher("no data cipher is bound to this engine (store.sealed.bind_cipher)")
    return cipher


def seal_text(dialect: Dialect, value: str | None) -> bytes | None:
    """``value`` as a ``Sealed`` column stores it, for hand-written SQL."""
    return Sealed().process_bind_param(value, dialect)


class Sealed(TypeDecorator[str]):
    """A text column stored sealed (bytes on SQLite, bytea on PostgreSQL)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, bytes | bytearray | memoryview):
            raise TypeError("a Sealed column takes text, not bytes")
        return cipher_of(dialect).seal(str(value).encode("utf-8"))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return cipher_of(dialect).open(bytes(value)).decode("utf-8")


class BlindIndex(TypeDecorator[str]):
    """A keyed hash of a text value: equal values give equal hashes, nothing else leaks.
    Reading it gives the hash back (it cannot be reversed)."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return cipher_of(dialect).blind_index(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return value
