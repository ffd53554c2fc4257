"""Hold codes: short, human-readable handles for a reservation (read over the phone, typed at
a till). Pure, no I/O."""

from __future__ import annotations

import re
import secrets

# No 0/O, 1/I/L: nothing a customer or a clerk can misread.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 7
HOLD_CODE_PATTERN = r"^[A-Za-z0-9]{3}-?[A-Za-z0-9]{4}$"
_NORMALIZED = re.compile(f"^[{ALPHABET}]{{{LENGTH}}}$")


def new_hold_code() -> str:
    """A random code in its stored form (7 characters, no dash): 31^7 ≈ 27.5 billion."""
    # One draw below 31^7 and its base-31 digits: as uniform as a draw per character, and one
    # read of the OS's random source instead of seven (it was 7 % of a reservation's API CPU).
    number = secrets.randbelow(len(ALPHABET) ** LENGTH)
    digits = []
    for _ in range(LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(digits)


def normalize_hold_code(text: str) -> str | None:
    """The stored form of a code as typed (any case, dash optional); None if it is not one."""
    code = text.strip().upper().replace("-", "")
    return code if _NORMALIZED.match(code) else None


def display_hold_code(code: str) -> str:
    """``K7MQ2PX`` → ``K7M-Q2PX``."""
    return f"{code[:3]}-{code[3:]}"
