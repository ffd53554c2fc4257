"""Connector configuration: one strict pydantic model per connector, from its TOML table.

Secrets are never written in the file itself: a value ``"env:NAME"`` is read from the
environment variable ``NAME`` when the config is loaded.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from connectors.framework.retry import Backoff

M = TypeVar("M", bound="ConnectorConfig")


def _from_env(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    return value


Secret = Annotated[SecretStr, BeforeValidator(_from_env)]


class RetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=6, ge=1, le=50)
    base_seconds: float = Field(default=0.2, gt=0, le=60)
    cap_seconds: float = Field(default=30.0, gt=0, le=3600)

    def backoff(self) -> Backoff:
        return Backoff(self.attempts, self.base_seconds, self.cap_seconds)


class ConnectorConfig(BaseModel):
    """Settings every connector has."""

    model_config = ConfigDict(extra="forbid")

    retry: RetryConfig = RetryConfig()
    drift_interval_seconds: float = Field(
        default=300.0, ge=0, description="0: no periodic drift check while running"
    )

    @classmethod
    def parse(cls: type[M], table: Mapping[str, Any]) -> M:
        return cls.model_validate(dict(table))


class IdMap(BaseModel):
    """A source's ids for catalog items and locations, mapped to SKUs and location ids."""

    model_config = ConfigDict(extra="forbid")

    skus: dict[str, str] = Field(default_factory=dict, description="source item id -> SKU")
    locations: dict[str, str] = Field(
        default_factory=dict, description="source location id -> location_id"
    )

    @classmethod
    def load(cls, path: Path) -> IdMap:
        """A TOML file with ``[skus]`` and ``[locations]`` tables."""
        with path.open("rb") as fh:
            return cls.model_validate(tomllib.load(fh))

    def sku_ids(self) -> dict[str, str]:
        """SKU -> source item id (the reverse map, for pushes)."""
        return {sku: item for item, sku in self.skus.items()}

    def location_ids(self) -> dict[str, str]:
        return {loc: source for source, loc in self.locations.items()}
