"""The adapter registry (aliases and dotted paths) and encryption at rest."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from adapters.base import ADAPTER_ALIASES, AdapterNotFound, resolve_adapter
from adapters.http import HttpJsonAdapter
from store.crypto import DataCipher, decode_master_key, new_master_key


def test_aliases_and_dotted_paths_resolve_to_the_same_class():
    assert resolve_adapter("http") is HttpJsonAdapter
    assert resolve_adapter("adapters.http:HttpJsonAdapter") is HttpJsonAdapter
    assert resolve_adapter("adapters.http.HttpJsonAdapter") is HttpJsonAdapter
    assert set(ADAPTER_ALIASES) >= {"province", "county_smart", "manual_excel", "bank_soap",
                                    "pos"}


@pytest.mark.parametrize("name, words", [
    ("pigeon", "unknown adapter 'pigeon'"),
    ("adapters.nowhere:Thing", "cannot be loaded"),
    ("adapters.http:NoSuchClass", "cannot be loaded"),
    ("store.crypto:DataCipher", "is not an Adapter subclass"),
])
def test_bad_adapter_names_say_why(name, words):
    with pytest.raises(AdapterNotFound, match=words):
        resolve_adapter(name)


def test_sealed_values_open_only_with_their_key_and_untampered():
    cipher = DataCipher(decode_master_key(new_master_key()))
    sealed = cipher.seal_json({"id_no": "11010519491231002X", "name": "张三"})
    assert b"11010519491231002X" not in sealed and "张三".encode() not in sealed
    assert cipher.open_json(sealed) == {"id_no": "11010519491231002X", "name": "张三"}
    assert cipher.seal_json({"a": 1}) != cipher.seal_json({"a": 1})  # fresh nonce each time
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(InvalidTag):
        cipher.open(tampered)
    other = DataCipher(decode_master_key(new_master_key()))
    with pytest.raises(InvalidTag):
        other.open(sealed)


def test_id_hash_is_keyed_and_normalised():
    key = decode_master_key(new_master_key())
    a, b = DataCipher(key), DataCipher(decode_master_key(new_master_key()))
    assert a.id_hash("11010519491231002x") == a.id_hash(" 11010519491231002X ")
    assert a.id_hash("11010519491231002X") != b.id_hash("11010519491231002X")
    assert a.id_hash(None) is None
    with pytest.raises(ValueError):
        decode_master_key("c2hvcnQ=")
