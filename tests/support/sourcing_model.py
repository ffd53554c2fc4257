"""The sourcing rules of pool reservations (docs/pool-reservations.md) in plain Python, for
comparing the reserve script's choices with (tests/store/test_pool_sourcing_model.py).

Deliberately written apart from ``_sourcing.lua``: straightforward loops over plain data, no
caching, the rules as the document states them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stocksync.domain.geo import distance_km


@dataclass(frozen=True)
class ModelPool:
    strategy: str
    locs: list[tuple[str, int, int]]  # (location, priority, buffer), any order


@dataclass
class World:
    """What the script reads: each position's on_hand - reserved - safety, the locations that
    exist with their coordinates (None: none)."""

    available: dict[tuple[str, str], int] = field(default_factory=dict)  # (sku, loc) -> units
    locations: dict[str, tuple[float, float] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    lines: list[tuple[str, str, int]]  # (sku, location, qty) sorted
    sources: list[tuple[str, str, str, int]]  # (sku, pool, location, qty) in the order taken
    short: list[tuple[str, str | None, str | None, int, int]]  # sku, loc, pool, requested, avail


def choose(
    world: World,
    pools: dict[str, ModelPool],
    loc_lines: list[tuple[str, str, int]],
    pool_lines: list[tuple[str, str, int]],
    near: tuple[float, float] | None,
    split: bool,
) -> Choice:
    """The reservation's lines as the rules give them (loc_lines and pool_lines each summed
    and sorted, as the store sends them)."""
    taken: dict[tuple[str, str], int] = {}
    for sku, loc, qty in loc_lines:
        taken[(sku, loc)] = taken.get((sku, loc), 0) + qty

    def pool_order(pool: ModelPool) -> list[tuple[str, int, int]]:
        ordered = sorted(pool.locs, key=lambda x: (x[1], x[0]))
        return [x for x in ordered if x[0] in world.locations]

    def offer(sku: str, loc: str, buffer: int) -> int:
        return max(0, world.available.get((sku, loc), 0) - taken.get((sku, loc), 0) - buffer)

    def ranked(pool: ModelPool, sku: str, strategy: str) -> list[tuple[str, int]]:
        cands = [(i, loc, offer(sku, loc, buf)) for i, (loc, _, buf) in enumerate(pool_order(pool))]
        if strategy == "most_available":
            cands.sort(key=lambda c: (-c[2], c[0]))
        elif strategy == "nearest":
            assert near is not None

            def key(c: tuple[int, str, int]) -> tuple[int, float, int]:
                where = world.locations[c[1]]
                if where is None:
                    return (1, 0.0, c[0])
                return (0, distance_km(near[0], near[1], where[0], where[1]), c[0])

            cands.sort(key=key)
        return [(loc, units) for _, loc, units in cands]

    sources: list[tuple[str, str, str, int]] = []
    pool_short: list[tuple[str, str | None, str | None, int, int]] = []

    def take(sku: str, pool_id: str, loc: str, qty: int) -> None:
        taken[(sku, loc)] = taken.get((sku, loc), 0) + qty
        sources.append((sku, pool_id, loc, qty))

    one_location: dict[str, bool] = {}
    for sku, pool_id, qty in pool_lines:
        pool = pools[pool_id]
        strategy = pool.strategy
        if strategy == "fewest_splits" and pool_id not in one_location:
            group = [ln for ln in pool_lines if ln[1] == pool_id]
            one_location[pool_id] = False
            for loc, _, buf in pool_order(pool):
                if all(offer(s, loc, buf) >= q for s, _, q in group):
                    for s, _, q in group:
                        take(s, pool_id, loc, q)
                    one_location[pool_id] = True
                    break
        if one_location.get(pool_id):
            continue
        if strategy == "fewest_splits":
            strategy = "most_available"
        order = ranked(pool, sku, strategy)
        got: list[tuple[str, int]] = []
        if not split:
            got = [(loc, qty) for loc, units in order if units >= qty][:1]
        else:
            rest = qty
            for loc, units in order:
                n = min(units, rest)
                if n > 0:
                    got.append((loc, n))
                    rest -= n
            if rest > 0:
                got = []
        if got:
            for loc, n in got:
                take(sku, pool_id, loc, n)
        else:
            offered = sum(
                max(0, world.available.get((sku, loc), 0) - buf) for loc, _, buf in pool_order(pool)
            )
            pool_short.append((sku, None, pool_id, qty, offered))

    merged: dict[tuple[str, str], int] = {}
    if not pool_short:
        for sku, loc, qty in loc_lines:
            merged[(sku, loc)] = merged.get((sku, loc), 0) + qty
        for sku, _, loc, qty in sources:
            merged[(sku, loc)] = merged.get((sku, loc), 0) + qty
    else:
        sources = []
        for sku, loc, qty in loc_lines:
            merged[(sku, loc)] = merged.get((sku, loc), 0) + qty
    lines = [(sku, loc, qty) for (sku, loc), qty in sorted(merged.items())]
    loc_short: list[tuple[str, str | None, str | None, int, int]] = [
        (sku, loc, None, qty, max(0, world.available.get((sku, loc), 0)))
        for sku, loc, qty in lines
        if qty > world.available.get((sku, loc), 0)
    ]
    short = loc_short + pool_short
    return Choice(lines if not short else [], sources if not short else [], short)
