"""The warehouse connector's table of the connectors TOML file."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator

from connectors.framework.config import ConnectorConfig
from stocksync.store.stock_changes import STOCK_ROWS_PER_CALL


class WarehouseConfig(ConnectorConfig):
    """Where files arrive and where they go once processed, and how hard to push the engine."""

    inbox: Path = Field(description="directory the WMS drops snapshot and receipt files in")
    processed_dir: Path | None = Field(
        default=None, description="where processed files and rejects reports go (inbox/processed)"
    )
    source: str = Field(default="wms", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    settle_seconds: float = Field(
        default=5.0, ge=0, le=3600, description="a file younger than this may still be written"
    )
    once: bool = Field(default=False, description="process what is in the inbox, then exit")
    concurrency: int = Field(default=4, ge=1, le=64, description="batched calls in flight")
    rows_per_call: int = Field(
        default=STOCK_ROWS_PER_CALL,
        ge=1,
        le=STOCK_ROWS_PER_CALL,
        # the name before rows were batched into one script call, still read (and capped)
        validation_alias=AliasChoices("rows_per_call", "pipeline_rows"),
        description=f"rows per batched script call, one round trip (at most {STOCK_ROWS_PER_CALL})",
    )
    batch_rows: int = Field(default=2000, ge=1, le=100_000)
    progress: bool | None = Field(default=None, description="progress bar; None: on a terminal")

    @field_validator("rows_per_call", mode="before")
    @classmethod
    def _capped(cls, value: object) -> object:
        """A call's rows are bounded by the store (its run time): a larger ask gets the bound."""
        if isinstance(value, int) and not isinstance(value, bool):
            return min(value, STOCK_ROWS_PER_CALL)
        return value

    @property
    def processed(self) -> Path:
        return self.processed_dir or self.inbox / "processed"
