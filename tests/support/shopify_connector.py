"""The Shopify connector against the Shopify stub: the inventory item and location ids the tests
map, the mapping file, the connector's config table, and draining the availability push."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connectors.shopify.push import AvailabilityPush
from stocksync.domain.model import Pool, PoolLocation
from stocksync.store.redis_store import RedisStockStore
from tests.support.shopify_stub import API_VERSION, TOKEN

ITEM = "gid://shopify/InventoryItem/808950810"
OTHER_ITEM = "gid://shopify/InventoryItem/49148385"
SHOP_LOC = "gid://shopify/Location/655441491"


def write_mapping(
    path: Path,
    skus: dict[str, str],
    locations: dict[str, str] | None = None,
    pools: dict[str, str] | None = None,
) -> Path:
    """A mapping file: ``skus`` (item GID -> SKU) at ``locations`` (Shopify location GID ->
    location id; default: SHOP_LOC as ``store-a`` unless ``pools`` are given) and ``pools``
    (Shopify location GID -> pool id)."""
    if locations is None:
        locations = {} if pools else {SHOP_LOC: "store-a"}
    lines = ["[skus]", *(f'"{item}" = "{sku}"' for item, sku in skus.items())]
    lines += ["[locations]", *(f'"{shop}" = "{loc}"' for shop, loc in locations.items())]
    lines += ["[pools]", *(f'"{shop}" = "{pool}"' for shop, pool in (pools or {}).items())]
    path.write_text("\n".join(lines) + "\n")
    return path


async def put_pool(
    store: RedisStockStore, pool_id: str, locations: Sequence[tuple[str, int, int]]
) -> str:
    """Create or re-configure a pool over ``locations`` ((location_id, priority, buffer)) in
    their domain, as the pools API does; returns the domain."""
    members = tuple(PoolLocation(loc, priority, buffer) for loc, priority, buffer in locations)
    await store.upsert_pool(Pool(pool_id, pool_id, ("web",), "priority", members))
    domain = await store.domain_of_pool(pool_id)
    assert domain is not None
    return domain


def table(base_url: str, mapping: Path, **extra: Any) -> dict[str, Any]:
    return {
        "shop_url": base_url,
        "api_version": API_VERSION,
        "access_token": TOKEN,
        "webhook_secret": "hush",
        "mapping_file": str(mapping),
        "drift_interval_seconds": 0,
        "read_block_ms": 50,
        "retry": {"attempts": 4, "base_seconds": 0.01, "cap_seconds": 0.05},
        **extra,
    }


def item_gid(n: int) -> str:
    return f"gid://shopify/InventoryItem/{900_000 + n}"


def location_gid(n: int) -> str:
    return f"gid://shopify/Location/{700_000 + n}"


async def drain(push: AvailabilityPush) -> int:
    done = 0
    while n := await push.drain_once():
        done += n
    return done
