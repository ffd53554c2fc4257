"""The function library stays within Lua 5.1's limit of 200 locals in one chunk."""

from __future__ import annotations

import re

from stocksync.store.scripts import helpers_source

LUA_LOCALS_LIMIT = 200


def test_the_library_leaves_room_below_luas_local_limit() -> None:
    # The helpers' top-level locals start at column 0 (a `local a, b` line declares several);
    # the library adds four of its own (OPS, frozen, batch, direct). The operations' bodies
    # are functions: their locals do not count.
    declared = 4
    for line in helpers_source().splitlines():
        match = re.match(r"local (function )?([\w, ]+?)\s*(=|\(|$)", line)
        if match:
            declared += 1 if match.group(1) else len(match.group(2).split(","))
    assert 0 < declared < LUA_LOCALS_LIMIT - 20, (
        f"{declared} top-level locals: group new helpers in a table before Lua refuses to load"
    )
