"""Pipeline: the path every source event takes, from mapped commands to applied stock.

Commands are applied in order with retries for transient failures; a payload that cannot be
mapped, or that the engine refuses for good, is written to the dead-letter table with the
reason, and counted. Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio.to_thread

from connectors.framework.commands import (
    Adjust,
    Command,
    MoveUnits,
    RecordReturn,
    Sale,
    SetCount,
)
from connectors.framework.gateway import Applied, EngineGateway
from connectors.framework.metrics import ConnectorMetrics, connector_metrics
from connectors.framework.retry import Backoff, is_transient, with_retries
from connectors.framework.state import ConnectorState
from stocksync.domain.errors import StockSyncError
from stocksync.plugins import EngineContext


class DeadLettered(Exception):
    """The payload was written to the dead-letter table (``letter_id``) instead of applied."""

    def __init__(self, letter_id: int, reason: str) -> None:
        super().__init__(reason)
        self.letter_id = letter_id
        self.reason = reason


def occurred_ms(command: Command) -> int | None:
    if isinstance(command, SetCount):
        return command.as_of_ms
    if isinstance(command, Adjust | Sale | MoveUnits | RecordReturn):
        return command.occurred_at_ms
    return None


class Pipeline:
    """One connector's way into the engine."""

    def __init__(self, name: str, ctx: EngineContext, backoff: Backoff | None = None) -> None:
        self.name = name
        self.ctx = ctx
        self.gateway = EngineGateway(ctx)
        self.state = ConnectorState(ctx.engine, name)
        self.metrics: ConnectorMetrics = connector_metrics(ctx.registry)
        self.backoff = backoff or Backoff()

    async def apply(self, kind: str, raw: str, commands: Sequence[Command]) -> list[Applied]:
        """Apply ``commands`` (mapped from ``raw``) in order.

        Raises :class:`DeadLettered` when the engine refuses one for good (earlier commands
        stay applied; they are idempotent, so replaying the letter is safe), and re-raises a
        transient error once retries are exhausted (the caller retries later: nothing was lost).
        """
        outcomes: list[Applied] = []
        for command in commands:
            try:
                outcome = await with_retries(
                    lambda command=command: self.gateway.apply(command),  # type: ignore[misc]
                    self.backoff,
                    on_retry=lambda _exc: self.metrics.outcome(self.name, "retried"),
                )
            except StockSyncError as exc:
                if is_transient(exc):
                    self.metrics.outcome(self.name, "failed")
                    raise
                reason = f"{exc.code}: {exc.detail} (command {command!r})"
                raise DeadLettered(await self.dead_letter(kind, reason, raw), reason) from exc
            except Exception as exc:
                if is_transient(exc):
                    self.metrics.outcome(self.name, "failed")
                raise
            self.metrics.outcome(self.name, outcome.value)
            self.metrics.observe_lag(self.name, occurred_ms(command))
            outcomes.append(outcome)
        return outcomes

    async def dead_letter(self, kind: str, reason: str, raw: str) -> int:
        """Record an unusable payload with why; returns the letter's id."""
        letter_id = await anyio.to_thread.run_sync(self.state.dead_letter, kind, reason, raw)
        self.metrics.outcome(self.name, "dead_letter")
        return letter_id

    async def checkpoint(self) -> str | None:
        return await anyio.to_thread.run_sync(self.state.checkpoint)

    async def save_checkpoint(self, cursor: str) -> None:
        await anyio.to_thread.run_sync(self.state.save_checkpoint, cursor)
