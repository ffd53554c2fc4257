"""Choosing stock domain names by where a cluster puts them.

A domain's keys share the hash tag ``{<namespace>:<domain>}`` and so one slot, owned by one
primary; the namespace's directory (``{<namespace>}``) has a slot of its own. Tests that mean to
spread domains over primaries, or to keep a domain off the directory's primary, pick names by
the CRC16 slot (redis-py's ``key_slot``) and the cluster's slot map (slot -> [primary port,
replica ports...]).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from redis.crc import key_slot

from stocksync.store.keys import Directory, Keys

SlotMap = Mapping[int, Sequence[int]]
NAMES_TRIED = 10_000


def domain_slot(namespace: str, domain: str) -> int:
    """The slot of every key of ``domain`` (its anchor's)."""
    return key_slot(Keys(namespace, domain).anchor.encode())


def directory_slot(namespace: str) -> int:
    return key_slot(Directory(namespace).anchor.encode())


def domain_on(
    owners: SlotMap, namespace: str, port: int, prefix: str = "d", taken: Iterable[str] = ()
) -> str:
    """A domain name (``<prefix><n>``) whose slot the primary on ``port`` owns."""
    skip = set(taken)
    for n in range(NAMES_TRIED):
        name = f"{prefix}{n}"
        if name not in skip and owners[domain_slot(namespace, name)][0] == port:
            return name
    raise AssertionError(f"no domain name for the primary on port {port}")


def domain_off_directory(owners: SlotMap, namespace: str, prefix: str = "d") -> str:
    """A domain on a primary other than the one that holds the namespace's directory."""
    directory_port = owners[directory_slot(namespace)][0]
    for n in range(NAMES_TRIED):
        name = f"{prefix}{n}"
        if owners[domain_slot(namespace, name)][0] != directory_port:
            return name
    raise AssertionError("every domain name landed on the directory's primary")


def domains_per_primary(
    owners: SlotMap, namespace: str, ports: Iterable[int], per_primary: int = 1, prefix: str = "d"
) -> dict[int, list[str]]:
    """``per_primary`` domain names on each primary of ``ports`` (port -> names)."""
    found: dict[int, list[str]] = {}
    for port in ports:
        names: list[str] = []
        for _ in range(per_primary):
            taken = [name for held in found.values() for name in held] + names
            names.append(domain_on(owners, namespace, port, prefix, taken))
        found[port] = names
    return found
