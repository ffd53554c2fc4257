"""The row-lock peer's API: ``uvicorn --factory bench.peer.app:create_app``.

Configured from the environment: ``BASELINE_DSN`` (a libpq connection string),
``BASELINE_TOKEN`` (the one bearer token it accepts) and ``BASELINE_POOL_SIZE`` (connections
per worker process). Holds do not expire here: the peer does less work per reserve than
stocksync, which reaps expired holds as it goes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

PROBLEM = "application/problem+json"
TRANSITIONS = {  # action -> (states it may leave, state it enters)
    "confirm": ({"held"}, "confirmed"),
    "fulfill": ({"held", "confirmed"}, "fulfilled"),
    "release": ({"held", "confirmed"}, "released"),
}


class LineIn(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    location_id: Annotated[str, Field(min_length=1, max_length=64)]
    qty: Annotated[int, Field(gt=0, le=10_000)]


class ReservationIn(BaseModel):
    reservation_id: Annotated[str, Field(min_length=1, max_length=128)]
    channel: Annotated[str, Field(min_length=1, max_length=32)]
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=100)]
    ttl_seconds: Annotated[int, Field(gt=0, le=86_400)] = 900


class Json(Response):
    """orjson-rendered JSON (datetimes included), as a competent service would answer."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Problem(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


def problem_response(request: Request, exc: Exception) -> Json:
    assert isinstance(exc, Problem)
    body = {
        "type": f"/problems/{exc.code}",
        "title": exc.code.replace("_", " "),
        "status": exc.status,
    }
    body |= {"detail": exc.detail, "code": exc.code, "instance": request.url.path, **exc.extra}
    return Json(body, status_code=exc.status, media_type=PROBLEM)


def create_app() -> FastAPI:
    dsn = os.environ["BASELINE_DSN"]
    token = os.environ.get("BASELINE_TOKEN", "baseline")
    size = int(os.environ.get("BASELINE_POOL_SIZE", "8"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Autocommit: a read is one round trip; writes open an explicit transaction.
        pool = AsyncConnectionPool(
            dsn, min_size=size, max_size=size, kwargs={"autocommit": True}, open=False, timeout=60
        )
        await pool.open(wait=True)
        app.state.pool = pool
        yield
        await pool.close()

    def authorized(authorization: Annotated[str, Header()] = "") -> None:
        if authorization != f"Bearer {token}":
            raise Problem(401, "unauthorized", "missing or wrong bearer token")

    app = FastAPI(lifespan=lifespan, default_response_class=Json)
    app.add_exception_handler(Problem, problem_response)
    auth = [Depends(authorized)]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/reservations", status_code=201, dependencies=auth)
    async def create_reservation(body: ReservationIn, request: Request) -> Json:
        async with request.app.state.pool.connection() as conn:
            created, row = await reserve(conn, body)
        return Json(row, status_code=201 if created else 200)

    @app.post("/v1/reservations/{reservation_id}/{action}", dependencies=auth)
    async def transition(reservation_id: str, action: str, request: Request) -> Json:
        if action not in TRANSITIONS:
            raise HTTPException(404)
        async with request.app.state.pool.connection() as conn:
            return Json(await move(conn, reservation_id, action))

    @app.get("/v1/availability", dependencies=auth)
    async def availability(sku: str, request: Request) -> Json:
        async with request.app.state.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT location_id, on_hand, allocated FROM stock WHERE sku = %s"
                " ORDER BY location_id",
                (sku,),
            )
            rows = [position(sku, *r) for r in await cur.fetchall()]
        total = sum(r["available"] for r in rows)
        return Json({"sku": sku, "total_available": total, "locations": rows})

    @app.get("/v1/stock/{location_id}/{sku}", dependencies=auth)
    async def stock(location_id: str, sku: str, request: Request) -> Json:
        async with request.app.state.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT location_id, on_hand, allocated FROM stock"
                " WHERE sku = %s AND location_id = %s",
                (sku, location_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise Problem(404, "not_found", f"no stock of {sku} at {location_id}")
        return Json(position(sku, *row))

    return app


def position(sku: str, location_id: str, on_hand: int, allocated: int) -> dict[str, Any]:
    return {
        "sku": sku,
        "location_id": location_id,
        "on_hand": on_hand,
        "reserved": allocated,
        "safety_stock": 0,
        "available": max(0, on_hand - allocated),
    }


def fingerprint(body: ReservationIn) -> str:
    lines = sorted((ln.sku, ln.location_id, ln.qty) for ln in body.lines)
    return hashlib.sha256(repr((body.channel, lines, body.ttl_seconds)).encode()).hexdigest()


async def reserve(conn: AsyncConnection[Any], body: ReservationIn) -> tuple[bool, dict[str, Any]]:
    """Lock the stock rows in id order, check, allocate, record the hold; all or nothing."""
    fp = fingerprint(body)
    skus = [ln.sku for ln in body.lines]
    locations = [ln.location_id for ln in body.lines]
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO reservation (reservation_id, channel, state, fingerprint, expires_at)"
            " VALUES (%s, %s, 'held', %s, clock_timestamp() + make_interval(secs => %s))"
            " ON CONFLICT DO NOTHING RETURNING created_at, updated_at, expires_at",
            (body.reservation_id, body.channel, fp, body.ttl_seconds),
        )
        inserted = await cur.fetchone()
        if inserted is None:  # the id exists: a retry (replay) or a conflicting reuse
            return False, await replay(conn, body.reservation_id, fp)
        cur = await conn.execute(
            "SELECT s.id, s.sku, s.location_id, s.on_hand - s.allocated FROM stock s"
            " JOIN unnest(%s::text[], %s::text[]) AS w(sku, location_id)"
            " USING (sku, location_id) ORDER BY s.id FOR UPDATE OF s",
            (skus, locations),
        )
        found = {(sku, loc): (sid, free) for sid, sku, loc, free in await cur.fetchall()}
        short = short_lines(body.lines, found)
        if short:
            raise Problem(409, "insufficient_stock", "not enough stock", lines=short)
        ids = [found[(ln.sku, ln.location_id)][0] for ln in body.lines]
        qtys = [ln.qty for ln in body.lines]
        await conn.execute(
            "UPDATE stock SET allocated = allocated + v.qty"
            " FROM unnest(%s::bigint[], %s::int[]) AS v(id, qty) WHERE stock.id = v.id",
            (ids, qtys),
        )
        await conn.execute(
            "INSERT INTO reservation_line (reservation_id, stock_id, qty)"
            " SELECT %s, id, qty FROM unnest(%s::bigint[], %s::int[]) AS v(id, qty)",
            (body.reservation_id, ids, qtys),
        )
    created_at, updated_at, expires_at = inserted
    lines = [ln.model_dump() for ln in body.lines]
    return True, out(
        body.reservation_id, body.channel, "held", lines, created_at, updated_at, expires_at
    )


def short_lines(
    lines: Sequence[LineIn], found: dict[tuple[str, str], tuple[int, int]]
) -> list[dict[str, Any]]:
    short = []
    for ln in lines:
        free = found.get((ln.sku, ln.location_id), (0, 0))[1]
        if free < ln.qty:
            short.append({"sku": ln.sku, "location_id": ln.location_id, "requested": ln.qty})
            short[-1]["available"] = max(0, free)
    return short


async def replay(conn: AsyncConnection[Any], reservation_id: str, fp: str) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT fingerprint FROM reservation WHERE reservation_id = %s", (reservation_id,)
    )
    row = await cur.fetchone()
    if row is None or row[0] != fp:
        raise Problem(409, "idempotency_conflict", f"{reservation_id} exists with another body")
    return await load(conn, reservation_id)


async def move(conn: AsyncConnection[Any], reservation_id: str, action: str) -> dict[str, Any]:
    """One transition; release and fulfill give the allocation back (rows locked in id order)."""
    sources, target = TRANSITIONS[action]
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT state FROM reservation WHERE reservation_id = %s FOR UPDATE", (reservation_id,)
        )
        row = await cur.fetchone()
        if row is None:
            raise Problem(404, "not_found", f"reservation {reservation_id} not found")
        if row[0] == target:
            return await load(conn, reservation_id)  # repeated: the same result
        if row[0] not in sources:
            raise Problem(409, "invalid_transition", f"{row[0]} -> {target} is not allowed")
        if action != "confirm":
            sold = 1 if action == "fulfill" else 0
            await conn.execute(
                "SELECT s.id FROM stock s JOIN reservation_line l ON l.stock_id = s.id"
                " WHERE l.reservation_id = %s ORDER BY s.id FOR UPDATE OF s",
                (reservation_id,),
            )
            await conn.execute(
                "UPDATE stock s SET allocated = s.allocated - l.qty,"
                " on_hand = s.on_hand - l.qty * %s"
                " FROM reservation_line l WHERE l.reservation_id = %s AND l.stock_id = s.id",
                (sold, reservation_id),
            )
        await conn.execute(
            "UPDATE reservation SET state = %s, updated_at = clock_timestamp()"
            " WHERE reservation_id = %s",
            (target, reservation_id),
        )
        return await load(conn, reservation_id)


async def load(conn: AsyncConnection[Any], reservation_id: str) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT r.channel, r.state, r.created_at, r.updated_at, r.expires_at,"
        " s.sku, s.location_id, l.qty FROM reservation r"
        " JOIN reservation_line l USING (reservation_id) JOIN stock s ON s.id = l.stock_id"
        " WHERE r.reservation_id = %s ORDER BY s.id",
        (reservation_id,),
    )
    rows = await cur.fetchall()
    if not rows:
        raise Problem(404, "not_found", f"reservation {reservation_id} not found")
    channel, state, created, updated, expires = rows[0][:5]
    lines = [{"sku": r[5], "location_id": r[6], "qty": r[7]} for r in rows]
    return out(reservation_id, channel, state, lines, created, updated, expires)


def out(
    reservation_id: str,
    channel: str,
    state: str,
    lines: list[dict[str, Any]],
    created_at: datetime,
    updated_at: datetime,
    expires_at: datetime,
) -> dict[str, Any]:
    return {
        "reservation_id": reservation_id,
        "channel": channel,
        "state": state,
        "lines": lines,
        "created_at": created_at,
        "updated_at": updated_at,
        "expires_at": expires_at,
    }
