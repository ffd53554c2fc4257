"""The ``[shopify]`` table of the connectors config file, and the Shopify id map."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from connectors.framework.config import ConnectorConfig, IdMap, Secret
from stocksync.domain.model import CHANNEL_PATTERN, LOCATION_PATTERN, POOL_PATTERN, Disposition

_POOL_ID = re.compile(POOL_PATTERN)


class ShopifyIdMap(IdMap):
    """``[skus]``: inventory item GID -> SKU (what pushes address); ``[locations]``: Shopify
    location GID -> location_id; ``[pools]``: Shopify location GID -> channel pool id (the
    Shopify location then shows the pool's offered units: the web shop sells exactly what the
    pool offers); ``[variants]``: product variant id (number or GID) -> SKU, for order lines
    whose ``sku`` field is not one of ours."""

    pools: dict[str, str] = Field(default_factory=dict)
    variants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source_per_shopify_location(self) -> Self:
        for shop_location, pool_id in self.pools.items():
            if not _POOL_ID.match(pool_id):
                raise ValueError(f"[pools] {shop_location}: {pool_id!r} is not a valid pool id")
        both = sorted(set(self.pools) & set(self.locations))
        if both:  # two numbers for one Shopify level: each push would undo the other's
            raise ValueError(
                f"Shopify location {both[0]} is mapped in both [locations] and [pools]; "
                "a Shopify location shows either one location's stock or one pool's"
            )
        return self


# The oldest Admin API version our queries run on: inventorySetQuantities' changeFromQuantity
# and the @idempotent directive both arrive in 2026-01 (older versions refuse the push):
# https://shopify.dev/changelog/compare-and-swap-redesign-for-inventory-set-quantities
# https://shopify.dev/changelog/adding-idempotency-for-inventory-adjustments-and-refund-mutations
MIN_API_VERSION = "2026-01"
# Stable versions are named YYYY-MM after the quarter they are released in
# (https://shopify.dev/docs/api/usage/versioning); "unstable" and release candidates may change
# under us, so they are not accepted.
API_VERSION = re.compile(r"^\d{4}-(01|04|07|10)$")


class ShopifyReturns(BaseModel):
    """``[shopify.returns]``: what the units of a refund line restocked as ``return`` become."""

    model_config = ConfigDict(extra="forbid")

    disposition: Disposition = Field(
        default=Disposition.RESTOCK,
        description="restock (on_hand), inspect (quality_control) or damaged",
    )


class ShopifyConfig(ConnectorConfig):
    shop_url: HttpUrl = Field(description="https://{shop}.myshopify.com (or a stub's base URL)")
    api_version: str = Field(
        default="2026-04", description=f"a stable Admin API version, {MIN_API_VERSION} or later"
    )
    access_token: Secret = Field(description="Admin API access token (X-Shopify-Access-Token)")
    webhook_secret: Secret = Field(description="the app's client secret: signs webhooks")
    mapping_file: Path
    order_location_id: str | None = Field(
        default=None,
        pattern=LOCATION_PATTERN,
        description="where web orders reserve; default: the map's only location",
    )
    channel: str = Field(default="web", pattern=CHANNEL_PATTERN)
    ignore_unmapped_lines: bool = Field(
        default=False,
        description="skip order lines of products stocksync does not track instead of "
        "dead-lettering the order",
    )
    returns: ShopifyReturns = ShopifyReturns()
    batch_size: int = Field(default=250, ge=1, le=250, description="quantities per mutation")
    read_block_ms: int = Field(default=1000, ge=10, le=60_000)
    cas_attempts: int = Field(default=5, ge=1, le=50, description="re-reads on a stale value")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    full_sync_interval_seconds: float = Field(
        default=300.0,
        ge=0,
        description="re-read pool configurations and push every mapped level whose Shopify "
        "value differs, this often (0: only at start)",
    )

    @field_validator("api_version")
    @classmethod
    def _supported_version(cls, version: str) -> str:
        if not API_VERSION.match(version):
            raise ValueError(
                f"api_version {version!r} is not a stable Shopify API version (YYYY-01, -04, "
                "-07 or -10)"
            )
        if version < MIN_API_VERSION:  # same format: string order is date order
            raise ValueError(
                f"api_version {version} is older than {MIN_API_VERSION}: the connector needs "
                "inventorySetQuantities' changeFromQuantity and the @idempotent directive"
            )
        return version

    @model_validator(mode="after")
    def _reachable_mapping(self) -> Self:
        if not self.mapping_file.is_file():
            raise ValueError(f"mapping_file {self.mapping_file} does not exist")
        return self

    def load_map(self) -> ShopifyIdMap:
        with self.mapping_file.open("rb") as fh:
            idmap = ShopifyIdMap.model_validate(tomllib.load(fh))
        if self.order_location_id is None and len(set(idmap.locations.values())) != 1:
            raise ValueError(
                "order_location_id is required when the mapping's [locations] does not name "
                "exactly one location"
            )
        return idmap

    def orders_location(self, idmap: ShopifyIdMap) -> str:
        return self.order_location_id or next(iter(idmap.locations.values()))
