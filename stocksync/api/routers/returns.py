"""Placeholder: filled in by issue 17 (stock beyond the shelf)."""

from __future__ import annotations

from fastapi import APIRouter

from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.strict_json import StrictJsonRoute

router = APIRouter(responses=PROBLEM_RESPONSES, route_class=StrictJsonRoute)
