"""Vendor API stubs (small ASGI apps) served with uvicorn over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

from tests.support.ports import free_port

StubServer = Callable[[ASGIApp], AbstractAsyncContextManager[str]]


@asynccontextmanager
async def serve_stub(asgi_app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``asgi_app`` on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        asgi_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded wait for the listening socket, not a timing assumption
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    assert server.started, "stub server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
