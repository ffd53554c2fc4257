"""Serves the staff and chat-agent pages and their static assets.

The pages are plain HTML with small ES modules (no build step). They ask for an API key in the
browser and call the JSON API with it; the routes here need no key, as the files hold no data.
Every user-visible string is in one catalogue per language (``static/i18n/<code>.json``, see
docs/pages.md). Assets are served by explicit routes from a fixed list of the package's files
(a ``Mount`` on an ``APIRouter`` is not carried over by ``include_router``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from stocksync.domain.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
CATALOGUES = STATIC / "i18n"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}

# Same-origin only: no inline scripts or styles, no third-party requests, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-cache",  # revalidate (ETag) so a new release is picked up at once
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_HEADERS = {**HEADERS, "Content-Security-Policy": CSP, "X-Frame-Options": "DENY"}

router = APIRouter(tags=["pages"], include_in_schema=False)


def _assets(folder: Path, suffixes: frozenset[str]) -> dict[str, Path]:
    return {
        path.name: path for path in folder.iterdir() if path.is_file() and path.suffix in suffixes
    }


ASSETS = _assets(STATIC, frozenset({".js", ".css", ".svg"}))
LANGUAGES = _assets(CATALOGUES, frozenset({".json"}))  # one catalogue per language


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=MEDIA_TYPES[".html"], headers=PAGE_HEADERS)


@router.get("/ui/store")
async def store_page() -> FileResponse:
    """Staff pick list of one store: ``/ui/store?location=<location_id>``."""
    return _page("store.html")


@router.get("/ui/chat")
async def chat_page() -> FileResponse:
    """Chat agent: find stock near a customer and hold it."""
    return _page("chat.html")


def _file(files: dict[str, Path], name: str) -> FileResponse:
    path = files.get(name)  # an exact name from the fixed list: no path traversal
    if path is None:
        raise NotFound(f"no asset {name!r}", resource="asset")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/ui/static/{name}")
async def asset(name: str) -> FileResponse:
    return _file(ASSETS, name)


@router.get("/ui/static/i18n/{name}")
async def catalogue(name: str) -> FileResponse:
    """A language's catalogue of the pages' texts: ``en.json``, ``de.json``."""
    return _file(LANGUAGES, name)
