"""`stocksync serve` logs JSON lines when its stderr is not a terminal: uvicorn's lines, and one
line per request from each API process (the app factory configures the workers' logging)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.serve import running_serve, serve_env

pytestmark = pytest.mark.slow


def json_lines(log: Path) -> list[dict[str, Any]]:
    """The log's JSON lines (the command's own banner, on stdout, is plain text)."""
    lines = log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_serve_with_two_workers_logs_json_lines_with_request_ids(
    redis_url: str, tmp_path: Path
) -> None:
    deployment = serve_env(redis_url, tmp_path, "logs")
    key = deployment.create_key("logs", "read")
    secret = key.split("_", 2)[2]
    with running_serve(deployment, "--workers", "2") as url:
        headers = {"Authorization": f"Bearer {key}"}
        for i in range(4):
            headers["X-Request-Id"] = f"serve-log-{i}"
            assert httpx.get(f"{url}/v1/locations", headers=headers).status_code == 200
    lines = json_lines(deployment.data_dir / "serve.log")
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    requests = [line for line in lines if line.get("request_id", "").startswith("serve-log-")]
    assert len(requests) == 4
    assert {line["route"] for line in requests} == {"/v1/locations"}
    assert {line["key_id"] for line in requests} == {key.split("_")[1]}
    assert secret not in (deployment.data_dir / "serve.log").read_text()
