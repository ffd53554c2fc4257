"""Hold codes: generated from an unambiguous alphabet, typed back in any case."""

from __future__ import annotations

from stocksync.domain.codes import (
    ALPHABET,
    display_hold_code,
    new_hold_code,
    normalize_hold_code,
)


def test_new_hold_code_uses_seven_unambiguous_characters() -> None:
    codes = {new_hold_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 7
        assert set(code) <= set(ALPHABET)
    assert not set("01ILO") & set(ALPHABET)


def test_new_hold_code_draws_every_character_at_every_position() -> None:
    codes = [new_hold_code() for _ in range(3000)]  # a character missed by chance: p < 1e-40
    for position in range(7):
        assert {code[position] for code in codes} == set(ALPHABET)


def test_display_hold_code_adds_a_dash() -> None:
    assert display_hold_code("K7MQ2PX") == "K7M-Q2PX"


def test_normalize_hold_code_accepts_any_case_and_an_optional_dash() -> None:
    assert normalize_hold_code("k7m-q2px") == "K7MQ2PX"
    assert normalize_hold_code(" K7MQ2PX ") == "K7MQ2PX"
    assert normalize_hold_code("K7M-Q2P0") is None  # 0 is not in the alphabet
    assert normalize_hold_code("K7M-Q2P") is None
