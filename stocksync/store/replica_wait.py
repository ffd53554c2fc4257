"""Waiting for a replica before a change is acknowledged (``STOCKSYNC_REPLICA_WAIT``).

Replication is asynchronous: a primary answers before its replicas have the write, so a
failover right after the answer promotes a replica without it and an acknowledged hold is
gone (Jepsen's Redis findings). A durable script call is therefore followed by ``WAIT`` (one
replica has the write in memory) or ``WAITAOF`` (one replica fsynced it to its AOF) on the
SAME connection: both count only the writes of the connection they are sent on.

``WAITAOF 1 1``: numlocal is 1, not 0, so the answer also means the primary's own AOF has it;
under ``appendfsync always`` that is already true when the script returns (it costs nothing),
and under ``everysec`` it turns a restart of the primary from "may lose a second" into "loses
nothing acknowledged". It needs ``appendonly yes`` on the primary (Redis refuses WAITAOF with
numlocal otherwise) and on the replica (else the replica never counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stocksync.domain.errors import ReplicationTimeout

ReplicaWaitSetting = Literal["auto", "off", "wait", "waitaof"]


@dataclass(frozen=True)
class ReplicaWait:
    """How a durable call waits: ``mode`` as configured, ``timeout_ms`` per call."""

    mode: ReplicaWaitSetting = "off"
    timeout_ms: int = 1000

    def command(self, *, has_replica: bool) -> tuple[str | int, ...] | None:
        """The command to send after a durable call, or None for no wait. ``auto`` waits
        (WAIT) only where the topology shows a replica; ``wait``/``waitaof`` always do, so a
        shard without its replica refuses to acknowledge (503) instead of silently risking it."""
        mode = self.mode
        if mode == "auto":
            mode = "wait" if has_replica else "off"
        if mode == "wait":
            return ("WAIT", 1, self.timeout_ms)
        if mode == "waitaof":
            return ("WAITAOF", 1, 1, self.timeout_ms)
        return None

    def check(self, command: tuple[str | int, ...], reply: Any) -> None:
        """Raise :class:`ReplicationTimeout` when ``reply`` (to ``command``) shows that no
        replica (or, for WAITAOF, not the primary's own AOF) confirmed the write in time."""
        if command[0] == "WAIT":
            confirmed = int(reply) >= 1
        else:  # WAITAOF: [local AOFs fsynced, replicas fsynced]
            confirmed = int(reply[0]) >= 1 and int(reply[1]) >= 1
        if not confirmed:
            raise ReplicationTimeout(
                f"the change was applied on the primary, but no replica confirmed it within "
                f"{self.timeout_ms} ms ({command[0]} answered {reply!r}); it may be lost if "
                "that primary fails now. Retrying the same request is safe (idempotent)",
                replicas_confirmed=reply,
            )
