"""RedisStockStore: the authoritative stock and reservation state, one Lua script per change."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from redis.asyncio import Redis

from stocksync.domain.codes import new_hold_code
from stocksync.domain.errors import (
    HoldLimitReached,
    IdempotencyConflict,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    OnHandMismatch,
    ShortLine,
    StockRegressed,
    StockSyncError,
)
from stocksync.domain.model import (
    Line,
    Location,
    Position,
    Reservation,
    ReserveResult,
    State,
    StockChangeResult,
    event_fingerprint,
    normalize_lines,
    reservation_fingerprint,
)
from stocksync.store.keys import Keys
from stocksync.store.scripts import register_scripts

ScriptObserver = Callable[[str, float], None]
CODE_ATTEMPTS = 8  # a code is taken with odds (active holds / 31^7): one retry is already rare


@dataclass(frozen=True)
class ReapResult:
    expired: int
    lag_seconds: float
    active: int


@dataclass(frozen=True)
class StockCall:
    """One count or delta script call, built but not yet sent."""

    script: str
    sku: str
    location_id: str
    args: tuple[str | int, ...]


@dataclass(frozen=True)
class TransitionResult:
    reservation: Reservation
    repeated: bool
    event_ids: tuple[str, ...] = ()  # outbox events of a terminal transition (for the ledger)


def raise_regressed(reply: Sequence[Any]) -> None:
    if reply and reply[0] == "stock_regressed":
        raise StockRegressed(
            f"stock of {reply[1]!r} in Redis is older than the ledger; writes are refused "
            "until `stocksync rebuild` repairs it",
            sku=reply[1],
        )


def field_pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


def _opt_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "", "inf") else None


def parse_reservation(reservation_id: str, fields: dict[str, str]) -> Reservation:
    history = sorted(
        ((k[2:], int(v)) for k, v in fields.items() if k.startswith("h:")), key=lambda h: h[1]
    )
    return Reservation(
        reservation_id=reservation_id,
        channel=fields["channel"],
        state=State(fields["state"]),
        lines=[Line(sku, loc, int(qty)) for sku, loc, qty in json.loads(fields["lines"])],
        created_at_ms=int(fields["created_at"]),
        updated_at_ms=int(fields["updated_at"]),
        expires_at_ms=_opt_int(fields.get("expires_at")),
        customer_ref=fields.get("customer_ref") or None,
        at_risk=fields.get("at_risk") == "1",
        history=history,
        hold_code=fields.get("code") or None,
    )


def parse_location(location_id: str, f: dict[str, str]) -> Location:
    return Location(
        location_id=location_id,
        name=f.get("name", ""),
        kind=f.get("kind", "store"),
        lat=float(f["lat"]) if f.get("lat") else None,
        lon=float(f["lon"]) if f.get("lon") else None,
        pickup=f.get("pickup") == "1",
        ship=f.get("ship") == "1",
    )


class RedisStockStore:
    """Stock positions, locations and reservations of one namespace in Redis."""

    def __init__(
        self,
        client: Redis,
        namespace: str = "default",
        *,
        retention_seconds: int = 7 * 24 * 3600,
        outbox_maxlen: int = 0,
        observe: ScriptObserver | None = None,
        max_holds_per_key: dict[str, int] | None = None,
        max_holds_per_customer: int = 0,
    ) -> None:
        self.client = client
        self.keys = Keys(namespace)
        self._scripts = register_scripts(client)
        self._head = [retention_seconds, outbox_maxlen]
        self._observe = observe
        self._key_caps = max_holds_per_key or {}  # per channel; absent or 0: no cap
        self._customer_cap = max_holds_per_customer  # 0: no cap

    async def _call(self, name: str, *args: str | int) -> Any:
        started = perf_counter()
        try:
            return await self._scripts[name](keys=[self.keys.prefix], args=[*self._head, *args])
        finally:
            if self._observe is not None:
                self._observe(name, perf_counter() - started)

    # -- locations -------------------------------------------------------------------------

    async def upsert_location(self, location: Location) -> bool:
        """Create or update a location; True when it was created."""
        reply = await self._call(
            "upsert_location",
            location.location_id,
            location.name,
            location.kind,
            "" if location.lat is None else repr(location.lat),
            "" if location.lon is None else repr(location.lon),
            int(location.pickup),
            int(location.ship),
        )
        return bool(int(reply[1]))

    async def list_locations(self) -> list[Location]:
        """All locations, sorted by id."""
        ids: list[str] = sorted(await self.client.smembers(self.keys.locations))  # type: ignore[arg-type]
        async with self.client.pipeline(transaction=False) as pipe:
            for location_id in ids:
                pipe.hgetall(self.keys.location(location_id))
            rows = await pipe.execute()
        return [parse_location(i, row) for i, row in zip(ids, rows, strict=True) if row]

    async def get_location(self, location_id: str) -> Location | None:
        fields: dict[str, str] = await self.client.hgetall(self.keys.location(location_id))  # type: ignore[assignment]
        return parse_location(location_id, fields) if fields else None

    # -- stock -----------------------------------------------------------------------------

    def count_call(
        self,
        sku: str,
        location_id: str,
        on_hand: int,
        *,
        as_of_ms: int | None = None,
        expected_on_hand: int | None = None,
        safety_stock: int | None = None,
        source: str = "api",
        source_event_id: str | None = None,
    ) -> StockCall:
        """The script call of an absolute count (run it with ``stock_changes`` for many)."""
        fp = event_fingerprint(
            "count", sku, location_id, on_hand, as_of_ms, expected_on_hand, safety_stock
        )
        args = (
            on_hand,
            _arg(as_of_ms),
            _arg(expected_on_hand),
            _arg(safety_stock),
            source,
            source_event_id or "",
            fp,
        )
        return StockCall("set_count", sku, location_id, args)

    def adjust_call(
        self,
        sku: str,
        location_id: str,
        delta: int,
        *,
        reason: str,
        source: str,
        source_event_id: str,
        occurred_at_ms: int | None = None,
    ) -> StockCall:
        """The script call of a physical delta."""
        fp = event_fingerprint("adjust", sku, location_id, delta, reason, occurred_at_ms)
        args = (delta, reason, source, source_event_id, _arg(occurred_at_ms), fp)
        return StockCall("adjust", sku, location_id, args)

    async def set_count(
        self,
        sku: str,
        location_id: str,
        on_hand: int,
        *,
        as_of_ms: int | None = None,
        expected_on_hand: int | None = None,
        safety_stock: int | None = None,
        source: str = "api",
        source_event_id: str | None = None,
    ) -> StockChangeResult:
        """Apply an absolute count (as-of rule, optional compare-and-set)."""
        call = self.count_call(
            sku,
            location_id,
            on_hand,
            as_of_ms=as_of_ms,
            expected_on_hand=expected_on_hand,
            safety_stock=safety_stock,
            source=source,
            source_event_id=source_event_id,
        )
        return await self.stock_change(call)

    async def adjust(
        self,
        sku: str,
        location_id: str,
        delta: int,
        *,
        reason: str,
        source: str,
        source_event_id: str,
        occurred_at_ms: int | None = None,
    ) -> StockChangeResult:
        """Apply a physical delta, idempotent by (source, source_event_id)."""
        call = self.adjust_call(
            sku,
            location_id,
            delta,
            reason=reason,
            source=source,
            source_event_id=source_event_id,
            occurred_at_ms=occurred_at_ms,
        )
        return await self.stock_change(call)

    async def stock_change(self, call: StockCall) -> StockChangeResult:
        """Run one count or delta built by ``count_call`` or ``adjust_call``."""
        reply = await self._call(call.script, call.sku, call.location_id, *call.args)
        return self._stock_change(call.sku, call.location_id, reply)

    async def stock_changes(
        self, calls: Sequence[StockCall]
    ) -> list[StockChangeResult | StockSyncError]:
        """Many counts and deltas in one pipelined round trip (bulk imports).

        Each call is still its own script run, atomic and idempotent as alone; they are not
        one transaction. A call the engine refuses gives its error in place of a result.
        """
        async with self.client.pipeline(transaction=False) as pipe:
            for call in calls:
                await self._scripts[call.script](
                    keys=[self.keys.prefix],
                    args=[*self._head, call.sku, call.location_id, *call.args],
                    client=pipe,
                )
            replies = await pipe.execute()
        results: list[StockChangeResult | StockSyncError] = []
        for call, reply in zip(calls, replies, strict=True):
            try:
                results.append(self._stock_change(call.sku, call.location_id, reply))
            except StockSyncError as exc:
                results.append(exc)
        return results

    def _stock_change(self, sku: str, location_id: str, reply: list[Any]) -> StockChangeResult:
        raise_regressed(reply)
        status = reply[0]
        if status == "unknown_location":
            raise NotFound(f"unknown location {location_id!r}", resource="location")
        if status == "idempotency_conflict":
            raise IdempotencyConflict("source_event_id was already used for a different change")
        if status == "on_hand_mismatch":
            raise OnHandMismatch(
                f"on_hand is {reply[1]}, not the expected value", on_hand=int(reply[1])
            )
        applied, on_hand, reserved, safety, seq, flagged = (int(v) for v in reply[1:7])
        return StockChangeResult(
            position=Position(sku, location_id, on_hand, reserved, safety),
            applied=bool(applied),
            replayed=status == "replay",
            seq=seq,
            at_risk_reservations=flagged,
        )

    async def positions(
        self, sku: str, location_ids: Sequence[str] = ()
    ) -> list[tuple[Position, Location]]:
        """Positions of a SKU with their locations (all known locations if none are named)."""
        flat = await self._call("read_positions", sku, *location_ids)
        out = []
        for i in range(0, len(flat), 10):
            loc, on_hand, reserved, safety, kind, name, lat, lon, pickup, ship = flat[i : i + 10]
            location = parse_location(
                loc,
                {
                    "kind": kind,
                    "name": name,
                    "lat": lat,
                    "lon": lon,
                    "pickup": pickup,
                    "ship": ship,
                },
            )
            out.append((Position(sku, loc, int(on_hand), int(reserved), int(safety)), location))
        return out

    async def position(self, sku: str, location_id: str) -> Position:
        found = await self.positions(sku, [location_id])
        if not found:
            raise NotFound(f"unknown location {location_id!r}", resource="location")
        return found[0][0]

    # -- reservations ----------------------------------------------------------------------

    async def reserve(
        self,
        reservation_id: str,
        channel: str,
        lines: Sequence[Line],
        ttl_seconds: int,
        customer_ref: str | None = None,
        *,
        key_id: str | None = None,
        confirm: bool = False,
        pickup_seconds: int | None = None,
    ) -> ReserveResult:
        """Hold every line or nothing; a retry with the same id and body replays the result.

        ``key_id`` (the caller's API key) counts the hold against the per-key cap. ``confirm``
        reserves and confirms in one script call (an order with no hold before it), with an
        optional pickup deadline.
        """
        normalized = normalize_lines(lines)
        fp = reservation_fingerprint(channel, normalized, ttl_seconds, customer_ref)
        if confirm:  # same id as a plain hold but another request: a conflict, not a replay
            fp += ":confirmed"
        lines_json = json.dumps([[ln.sku, ln.location_id, ln.qty] for ln in normalized])
        for _ in range(CODE_ATTEMPTS):
            code = new_hold_code()
            reply = await self._call(
                "reserve",
                reservation_id,
                channel,
                ttl_seconds * 1000,
                fp,
                customer_ref or "",
                lines_json,
                code,
                key_id or "",
                self._key_caps.get(channel, 0),
                self._customer_cap,
                "1" if confirm else "",
                "" if pickup_seconds is None else pickup_seconds * 1000,
            )
            if reply[0] != "code_taken":
                break
        else:
            raise RuntimeError(f"no free hold code after {CODE_ATTEMPTS} attempts")
        raise_regressed(reply)
        status = reply[0]
        if status == "ok" and int(reply[1]):
            created_at, expires_at = int(reply[2]), _opt_int(reply[3])
            history = [(State.HELD.value, created_at)]
            if confirm:
                history.append((State.CONFIRMED.value, created_at))
            held = Reservation(
                reservation_id=reservation_id,
                channel=channel,
                state=State.CONFIRMED if confirm else State.HELD,
                lines=normalized,
                created_at_ms=created_at,
                updated_at_ms=created_at,
                expires_at_ms=expires_at,
                customer_ref=customer_ref,
                history=history,
                hold_code=code,
            )
            return ReserveResult(held, created=True)
        if status == "ok":
            return ReserveResult(parse_reservation(reservation_id, field_pairs(reply[2:])), False)
        if status == "insufficient_stock":
            rest = reply[1:]
            raise InsufficientStock(
                [
                    ShortLine(rest[i], rest[i + 1], int(rest[i + 2]), int(rest[i + 3]))
                    for i in range(0, len(rest), 4)
                ]
            )
        if status == "unknown_location":
            raise NotFound(
                f"unknown location(s): {', '.join(sorted(set(reply[1:])))}", resource="location"
            )
        if status == "idempotency_conflict":
            raise IdempotencyConflict(
                f"reservation {reservation_id!r} exists with a different request"
            )
        if status == "hold_limit_reached":
            scope, limit = str(reply[1]), int(reply[2])
            raise HoldLimitReached(
                f"this {scope} already has {limit} active holds; nothing was reserved",
                limit=limit,
                scope=scope,
            )
        raise RuntimeError(f"unexpected reply from reserve: {reply!r}")

    async def get_reservation(self, reservation_id: str) -> Reservation:
        flat = await self._call("get_reservation", reservation_id)
        if not flat:
            raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
        return parse_reservation(reservation_id, field_pairs(flat))

    async def reservation_locations(self, reservation_id: str) -> set[str] | None:
        """The locations a reservation touches (a plain read, for authorisation checks)."""
        raw = await self.client.hget(self.keys.reservation(reservation_id), "lines")
        if raw is None:
            return None
        return {loc for _, loc, _ in json.loads(raw)}

    async def confirm(
        self, reservation_id: str, pickup_seconds: int | None = None
    ) -> TransitionResult:
        pickup_ms = "" if pickup_seconds is None else pickup_seconds * 1000
        return await self._transition("confirm", reservation_id, pickup_ms)

    async def ready(self, reservation_id: str) -> TransitionResult:
        return await self._transition("ready", reservation_id)

    async def fulfill(
        self, reservation_id: str, occurred_at_ms: int | None = None
    ) -> TransitionResult:
        """The units left; ``occurred_at_ms`` (a late till report) goes through the as-of rule."""
        return await self._transition("fulfill", reservation_id, _arg(occurred_at_ms))

    async def release(self, reservation_id: str) -> TransitionResult:
        return await self._transition("release", reservation_id)

    async def extend(self, reservation_id: str, ttl_seconds: int) -> TransitionResult:
        return await self._transition("extend", reservation_id, ttl_seconds * 1000)

    async def _transition(
        self, action: str, reservation_id: str, *args: str | int
    ) -> TransitionResult:
        reply = await self._call(action, reservation_id, *args)
        raise_regressed(reply)
        status = reply[0]
        if status == "ok":
            fields = field_pairs(reply[2:])
            events = tuple(e for e in fields.get("events", "").split(",") if e)
            return TransitionResult(
                parse_reservation(reservation_id, fields), bool(int(reply[1])), events
            )
        if status == "not_found":
            raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
        if status == "invalid_transition":
            raise InvalidTransition(
                f"cannot {action} a reservation that is {reply[1]}", state=reply[1], action=action
            )
        raise RuntimeError(f"unexpected reply from {action}: {reply!r}")

    async def reap(self, limit: int = 500) -> ReapResult:
        """Expire up to ``limit`` reservations whose deadline passed."""
        expired, lag_ms, active = await self._call("expire", limit)
        return ReapResult(int(expired), int(lag_ms) / 1000, int(active))


def _arg(value: int | None) -> str | int:
    return "" if value is None else value


class RecoveryOps:
    """The store's recovery side: freeze regressed SKUs, rebuild them from the ledger."""

    def __init__(self, store: RedisStockStore) -> None:
        self.store = store

    async def seqs(self) -> dict[str, int]:
        raw: dict[str, str] = await self.store.client.hgetall(self.store.keys.seq)  # type: ignore[assignment]
        return {sku: int(seq) for sku, seq in raw.items()}

    async def regressed(self) -> set[str]:
        members: set[str] = await self.store.client.smembers(self.store.keys.regressed)  # type: ignore[assignment]
        return members

    async def freeze_regressed(self, ledger_seqs: dict[str, int], chunk: int = 1000) -> list[str]:
        """Freeze every SKU whose Redis seq is lower than the ledger's; returns them."""
        frozen: list[str] = []
        items = list(ledger_seqs.items())
        for i in range(0, len(items), chunk):
            payload = json.dumps(dict(items[i : i + chunk]))
            frozen.extend(await self.store._call("check_regression", payload))
        return frozen

    async def rebuild_sku(
        self,
        sku: str,
        seq: int,
        positions: list[list[Any]],
        reservations: list[dict[str, Any]],
        finished: list[dict[str, Any]] | None = None,
        idempotency: list[list[Any]] | None = None,
    ) -> tuple[int, int]:
        """Replace one SKU's state with the ledger's and lift its freeze."""
        reply = await self.store._call(
            "rebuild",
            sku,
            seq,
            json.dumps(positions),
            json.dumps(reservations),
            json.dumps(finished or []),
            json.dumps(idempotency or []),
        )
        return int(reply[1]), int(reply[2])
