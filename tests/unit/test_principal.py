"""API key principals: scopes, location binding, key format."""

from __future__ import annotations

import pytest

from stocksync.auth.principal import Principal, hash_secret, new_secret, parse_scopes, split_key
from stocksync.domain.errors import Forbidden


def principal(scopes: str, locations: set[str] | None = None) -> Principal:
    return Principal("k", "n", parse_scopes(scopes), frozenset(locations) if locations else None)


def test_principal_require_checks_scope_and_admin_implies_all() -> None:
    principal("read").require("read")
    with pytest.raises(Forbidden):
        principal("read").require("reserve")
    principal("admin").require("stock:write")


def test_principal_require_locations_refuses_outside_binding() -> None:
    bound = principal("reserve", {"store-a"})
    bound.require_locations(["store-a"])
    with pytest.raises(Forbidden) as err:
        bound.require_locations(["store-a", "store-b"])
    assert err.value.extra["locations"] == ["store-b"]
    principal("reserve").require_locations(["anything"])


@pytest.mark.parametrize("text", ["", "read,write", "root"])
def test_parse_scopes_refuses_unknown_or_empty(text: str) -> None:
    with pytest.raises(ValueError, match="scopes"):
        parse_scopes(text)


def test_new_secret_round_trips_through_split_key() -> None:
    key_id, secret, key = new_secret()
    assert split_key(key) == (key_id, secret)
    assert hash_secret(secret) != secret
    assert split_key("ssk_only") is None
    assert split_key("xyz_a_b") is None
