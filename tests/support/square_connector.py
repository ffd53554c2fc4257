"""The Square connector against the Square stub: the catalogue and location ids the tests map,
the mapping file and the connector's config table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.square_stub import TOKEN

ITEM, OTHER_ITEM, SQ_LOC = "W62UWFY35CWMYGVWK6TWJDNI", "AII3WT3Q6T4KRUSGOMJBSD4D", "C6W5YS5QM06F5"
LOC = "store-a"
SQ_LOC2, LOC2 = "L9PJX0H2D0M6V", "store-b"  # a second store, for transfers


def config_table(url: str, mapping_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": url,
        "access_token": TOKEN,
        "mapping_file": str(mapping_file),
        "poll_interval_seconds": 0.05,
        "drift_interval_seconds": 0,
        "retry": {"attempts": 2, "base_seconds": 0.01, "cap_seconds": 0.05},
        **extra,
    }


def write_mapping(path: Path, skus: dict[str, str]) -> Path:
    lines = ["[skus]", *(f'"{k}" = "{v}"' for k, v in skus.items())]
    lines += ["[locations]", f'"{SQ_LOC}" = "{LOC}"', f'"{SQ_LOC2}" = "{LOC2}"']
    path.write_text("\n".join(lines) + "\n")
    return path
