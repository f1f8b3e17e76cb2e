"""Encryption at rest for personal data, and keyed hashes for searching by ID number.

Payloads (applications, call-log bodies, stored files) are sealed with AES-256-GCM.
Each sealed value starts with a one-byte key version so keys can be rotated: a new
key is added with a higher version and old rows stay readable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = 1
_NONCE_BYTES = 12


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cityhub", info=purpose).derive(master)


def new_master_key() -> str:
    """A fresh master key, URL-safe base64, for the local secrets file or HUB_DATA_KEY."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def decode_master_key(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text.encode())
    if len(raw) < 32:
        raise ValueError("the data key must be at least 32 bytes (base64)")
    return raw


class DataCipher:
    """Seals and opens byte strings and JSON documents; hashes ID numbers for lookup."""

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(_derive(master_key, b"cityhub-data-v1"))
        self._hash_key = _derive(master_key, b"cityhub-idhash-v1")
        self._index_key = _derive(master_key, b"cityhub-blind-index-v1")

    def seal(self, plain: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return bytes([_VERSION]) + nonce + self._aead.encrypt(nonce, plain, None)

    def open(self, sealed: bytes) -> bytes:
        if not sealed or sealed[0] != _VERSION:
            raise ValueError("sealed value has an unknown key version")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], None)

    def seal_json(self, value: Any) -> bytes:
        return self.seal(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())

    def open_json(self, sealed: bytes | None) -> Any:
        if sealed is None:
            return None
        return json.loads(self.open(sealed))

    def id_hash(self, id_no: str | None) -> str | None:
        """Keyed hash of an ID number: equal IDs give equal hashes, nothing else leaks."""
        if not id_no:
            return None
        normal = id_no.strip().upper().encode()
        return hmac.new(self._hash_key, normal, hashlib.sha256).hexdigest()

    def blind_index(self, value: str) -> str:
        """Keyed hash of a searchable value (an operator's name, an audit target)."""
        return hmac.new(self._index_key, value.strip().encode(), hashlib.sha256).hexdigest()
