"""The warehouse connector's table of the connectors TOML file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from connectors.framework.config import ConnectorConfig


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
    concurrency: int = Field(default=4, ge=1, le=64, description="pipelines in flight")
    pipeline_rows: int = Field(
        default=500, ge=1, le=10_000, description="script calls per pipelined round trip"
    )
    batch_rows: int = Field(default=2000, ge=1, le=100_000)
    progress: bool | None = Field(default=None, description="progress bar; None: on a terminal")

    @property
    def processed(self) -> Path:
        return self.processed_dir or self.inbox / "processed"
