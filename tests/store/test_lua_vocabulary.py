"""The Lua scripts speak Python's vocabulary: states, event kinds and key names.

Python is the single source (``domain.model.State``/``ACTIVE``, ``domain.events.EventKind``,
``store.keys.Keys``); these tests read the shipped ``.lua`` files, and run their key helpers on
a real server, so a script that drifts from it fails here instead of in production.
"""

from __future__ import annotations

import re
from importlib import resources

from redis.asyncio import Redis

from stocksync.domain.events import EventKind
from stocksync.domain.model import ACTIVE, State
from stocksync.store.domain_moves import moving_key, parked_key
from stocksync.store.keys import BUCKET_FIELDS, POSITION_FIELDS, Directory, Keys, ordered_member
from stocksync.store.scripts import HELPERS, OPERATIONS, library_source

LUA = resources.files("stocksync.store") / "lua"


def lua_files() -> dict[str, str]:
    return {f.name: f.read_text() for f in LUA.iterdir() if f.name.endswith(".lua")}


def test_every_operation_has_a_script_and_every_script_is_an_operation() -> None:
    names = {name.removesuffix(".lua") for name in lua_files()} - set(HELPERS)
    assert names == set(OPERATIONS)


def test_scripts_emit_only_known_event_kinds_and_every_kind_is_emitted() -> None:
    emitted: set[str] = set()
    for text in lua_files().values():
        emitted |= set(re.findall(r"\bemit(?:_lines|_bucket_event)?\('(\w+)'", text))
        emitted |= set(re.findall(r"\bfinish\([^)]*?'(\w+)'", text))
    assert emitted <= set(EventKind), f"kinds Python does not know: {emitted - set(EventKind)}"
    assert set(EventKind) <= emitted, f"kinds no script emits: {set(EventKind) - emitted}"


def test_scripts_compare_states_only_with_known_states() -> None:
    compared: set[str] = set()
    for text in lua_files().values():
        compared |= set(re.findall(r"state [~=]= '(\w+)'", text))
    assert compared, "the pattern no longer matches the scripts"
    assert compared <= set(State)


def test_no_script_restates_the_active_states_or_the_delta_window() -> None:
    for name, text in lua_files().items():
        assert not re.search(r"local\s+(ACTIVE|DELTA_WINDOW_MS)\s*=", text), name


def test_keys_are_built_only_by_the_helpers_of_lib() -> None:
    for name, text in lua_files().items():
        if name != "_lib.lua":
            assert "P .." not in text, f"{name} builds a key itself; add a helper to _lib.lua"


async def test_lua_key_helpers_build_the_names_python_builds(redis_client: Redis) -> None:
    keys = Keys("vocab")
    probe = library_source() + (
        "\nlocal states = {}\n"
        "for state in pairs(ACTIVE) do table.insert(states, state) end\n"
        "table.sort(states)\n"
        "return { pos_key('S', 'L'), holds_key('S', 'L'), deltas_key('S', 'L'),"
        " sku_locs_key('S'), loc_key('L'), res_key('R'), locstate_key('L', 'held'),"
        " ages_key('L'), bykey_key('K'), bycust_key('C'), locrisk_key('L'),"
        " heldunits_key('K', 'C'), code_key('X'), idem_key('src', 'E'),"
        " ATRISK, ACTIVE_KEY, ordered_member('R', 1712345678901), pool_key('W'), POOLS_KEY,"
        " OUTBOX_KEY, SEQ_KEY, REGRESSED_KEY, LOCATIONS_KEY, GEO_KEY, states }"
    )
    reply = await redis_client.eval(probe, 1, keys.anchor, 60, 0)  # type: ignore[no-untyped-call]
    *names, states = reply
    assert names == [
        keys.position("S", "L"),
        keys.holds("S", "L"),
        keys.deltas("S", "L"),
        keys.sku_locations("S"),
        keys.location("L"),
        keys.reservation("R"),
        keys.location_reservations("L", "held"),
        keys.hold_ages("L"),
        keys.key_reservations("K"),
        keys.customer_reservations("C"),
        keys.location_at_risk("L"),
        keys.held_units("K", "C"),
        keys.hold_code("X"),
        keys.idempotency("src", "E"),
        keys.at_risk,
        keys.active,
        ordered_member("R", 1712345678901),
        keys.pool("W"),
        keys.pools,
        keys.outbox,
        keys.seq,
        keys.regressed,
        keys.locations,
        keys.geo,
    ]
    assert states == sorted(ACTIVE)


async def test_lua_position_fields_are_the_ones_python_reads(redis_client: Redis) -> None:
    probe = library_source() + (
        "\nreturn { ON_HAND, RESERVED, SAFETY, COUNT_AS_OF, DAMAGED, QUALITY_CONTROL, IN_TRANSIT }"
    )
    reply = await redis_client.eval(probe, 1, Keys("vocab").anchor, 60, 0)  # type: ignore[no-untyped-call]
    assert tuple(reply) == POSITION_FIELDS


async def test_the_beyond_the_shelf_helpers_build_the_names_python_builds(
    redis_client: Redis,
) -> None:
    keys = Keys("vocab", "north")
    probe = library_source() + (
        "\nreturn { arrivals_key('S', 'L'), return_key('R'), returned_key('X'),"
        " transfer_key('T'), loc_transfers_key('L'), DAMAGED, QUALITY_CONTROL, IN_TRANSIT }"
    )
    reply = await redis_client.eval(probe, 1, keys.anchor, 60, 0)  # type: ignore[no-untyped-call]
    assert reply == [
        keys.arrivals("S", "L"),
        keys.stock_return("R"),
        keys.returned_units("X"),
        keys.transfer("T"),
        keys.location_transfers("L"),
        *POSITION_FIELDS[4:],
    ]
    assert POSITION_FIELDS[4:] == (
        BUCKET_FIELDS["damaged"],
        BUCKET_FIELDS["quality_control"],
        BUCKET_FIELDS["in_transit"],
    )


async def test_the_directory_helper_builds_the_name_python_builds(redis_client: Redis) -> None:
    directory = Directory("vocab")
    probe = library_source() + "\nreturn resdomain_key()"
    reply = await redis_client.eval(probe, 1, directory.anchor, 60, 0)  # type: ignore[no-untyped-call]
    assert reply == directory.reservation_domains


async def test_the_location_move_helpers_build_the_names_python_builds(
    redis_client: Redis,
) -> None:
    keys = Keys("vocab", "north")
    probe = library_source() + "\nreturn { moving_key('L'), parked_key('L') }"
    reply = await redis_client.eval(probe, 1, keys.anchor, 60, 0)  # type: ignore[no-untyped-call]
    assert reply == [moving_key(keys, "L"), parked_key(keys, "L")]
