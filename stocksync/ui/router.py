"""Serves the staff and chat-agent pages and their static assets."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["pages"], include_in_schema=False)
