"""Builds the function library from the Lua files shipped in ``lua/``.

The library is one source loaded with ``FUNCTION LOAD REPLACE``: a generated prelude (the
constants Python owns: the active states, the delta window and Redis GEO's coordinate range),
then ``_lib.lua`` (helpers, created once per load, not per call), then each operation file
wrapped mechanically as a local function of ``(KEYS, ARGV)``, then a ``batch`` function that
runs many operations in one ``FCALL`` (group commit, see ``batcher.py``).

Its name and every function's name carry a version, a short hash of the whole source: two
builds never share a name, so a process never runs another build's code, and builds coexist
on one server during a deploy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from stocksync.domain.geo import GEO_LAT_MAX, GEO_LON_MAX
from stocksync.domain.model import ACTIVE, DELTA_WINDOW_MS

OPERATIONS = (
    "reserve",
    "confirm",
    "ready",
    "fulfill",
    "release",
    "extend",
    "set_count",
    "adjust",
    "sell",
    "read_positions",
    "get_reservation",
    "expire",
    "upsert_location",
    "rebuild",
    "check_regression",
    "nearby",
    "find_reservations",
    "move",
    "erase_customer",
    "reindex",
    "audit_read",
    "audit_scan",
    "stock_changes",
    "claim_reservation",
    "move_location",
    "upsert_pool",
    "pool_availability",
    "transfer_ship",
    "transfer_receive",
    "transfer_cancel",
    "list_transfers",
    "set_incoming",
    "remove_incoming",
    "move_stock",
    "return_stock",
    "inspection_queue",
)
# Operations that change state and go through the batcher (group commit). Reads answer on
# their own FCALL; rebuild, check_regression and erase_customer are rare admin calls.
BATCHED = frozenset(
    {
        "reserve",
        "confirm",
        "ready",
        "fulfill",
        "release",
        "extend",
        "set_count",
        "adjust",
        "sell",
        "expire",
        "upsert_location",
        "move",
        "claim_reservation",
        "upsert_pool",
        "transfer_ship",
        "transfer_receive",
        "transfer_cancel",
        "set_incoming",
        "remove_incoming",
        "move_stock",
        "return_stock",
    }
)
LIBRARY_PREFIX = "stocksync_"
VERSION_CHARS = 12
_VERSION = "{version}"  # replaced in the source by the version, once it is known

# Runs many operations in one call. Each one gets its own per-call values (begin) and its own
# pcall: an error (a Lua runtime error, a failed redis.call) fills its slot, not the batch's.
# Every operation checks before its first write, so a refusal (a reply like
# {'insufficient_stock', ...}) never leaves a partial write; only a runtime error mid-operation
# could (Redis has no rollback), and it would fail alone in its slot.
_BATCH = """
-- A domain being moved to another node (stocksync.store.domain_moves) is frozen: every call is
-- refused before it reads or writes anything, and the caller retries once the move is done.
local function frozen(keys)
  if redis.call('HEXISTS', keys[1], 'frozen') == 1 then
    return redis.error_reply('FROZEN this stock domain is moving to another node; retry shortly')
  end
  return nil
end

-- batch: KEYS[1] the domain's meta hash. ARGV: retention, outbox cap, count, then per operation:
-- name, n, and n values (the operation's own arguments, then its actor).
-- Returns one reply per operation, in order; an operation's error is an error in its slot.
local function batch(keys, args)
  local refused = frozen(keys)
  if refused then return refused end
  local now = server_now()
  local results = {}
  local i = 4
  for slot = 1, tonumber(args[3]) do
    local name, n = args[i], tonumber(args[i + 1])
    local argv = { args[1], args[2] }
    for k = 1, n do argv[k + 2] = args[i + 1 + k] end
    i = i + 2 + n
    local op, reply = OPS[name], nil
    if op then
      begin(keys, argv, now)
      local ok, r = pcall(op, keys, argv)
      if ok then
        reply = r
      elseif type(r) == 'table' then
        reply = { err = r.err or 'ERR error in ' .. name }
      else
        reply = { err = 'ERR ' .. name .. ': ' .. tostring(r) }
      end
    else
      reply = { err = 'ERR unknown operation ' .. tostring(name) }
    end
    if reply == nil then reply = false end -- a nil would end the array early
    results[slot] = reply
  end
  return results
end

local function direct(op)
  return function(keys, args)
    local refused = frozen(keys)
    if refused then return refused end
    begin(keys, args, server_now())
    return op(keys, args)
  end
end

%(register)s
redis.register_function('ss_%(version)s_batch', batch)
"""


def prelude() -> str:
    """Lua constants generated from the Python vocabulary, so neither side restates them."""
    active = ", ".join(f"{state.value} = true" for state in sorted(ACTIVE))
    return (
        "-- generated by stocksync/store/scripts.py from stocksync.domain.model\n"
        f"local ACTIVE = {{ {active} }}\n"
        f"local DELTA_WINDOW_MS = {DELTA_WINDOW_MS}\n"
        f"local GEO_LAT_MAX = {GEO_LAT_MAX!r}\n"
        f"local GEO_LON_MAX = {GEO_LON_MAX!r}\n"
    )


def _lua(name: str) -> str:
    return (resources.files("stocksync.store") / "lua" / f"{name}.lua").read_text()


# Files of shared helpers, in load order: each may use the ones before it.
HELPERS = ("_lib", "_sourcing", "_arrivals", "_transfers")


def helpers_source() -> str:
    """The prelude and the shared helpers every operation uses."""
    return prelude() + "".join(_lua(name) for name in HELPERS)


def library_source() -> str:
    """The helpers bound to one EVAL call's KEYS and ARGV: for probing them in tests."""
    return helpers_source() + "\nbegin(KEYS, ARGV, server_now())\n"


@dataclass(frozen=True)
class Library:
    """A built function library: its version, the source to load, and its function names."""

    version: str
    source: str

    @property
    def name(self) -> str:
        return f"{LIBRARY_PREFIX}{self.version}"

    def function(self, operation: str) -> str:
        """The FCALL name of an operation (or of ``batch``) in this build."""
        return f"ss_{self.version}_{operation}"


def build_library(operations: Mapping[str, str]) -> Library:
    """The library of ``operations`` (name -> Lua body reading KEYS and ARGV)."""
    # The operations are fields of one table, not a local each: Lua 5.1 allows 200 locals in
    # a chunk, and the helpers already take most of them.
    wrapped = "\nlocal OPS = {}\n" + "".join(
        f"\nOPS.{name} = function(KEYS, ARGV)\n{body}\nend\n" for name, body in operations.items()
    )
    register = "".join(
        f"redis.register_function('ss_{_VERSION}_{name}', direct(OPS.{name}))\n"
        for name in operations
    )
    body = helpers_source() + wrapped + _BATCH % {"register": register, "version": _VERSION}
    version = hashlib.sha1(body.encode()).hexdigest()[:VERSION_CHARS]
    source = f"#!lua name={LIBRARY_PREFIX}{version}\n" + body.replace(_VERSION, version)
    return Library(version, source)


@cache
def library() -> Library:
    """This build's library: every operation shipped in ``lua/``."""
    return build_library({name: _lua(name) for name in OPERATIONS})
