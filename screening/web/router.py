"""The pages the service serves itself: static files shipped in the package, no CDN,
nothing fetched at run time."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def dashboard() -> FileResponse:
    """The command-center dashboard (admin token asked for in the page)."""
    return FileResponse(STATIC / "dashboard.html", headers={"Cache-Control": "no-cache"})


@router.get("/query")
async def resident_query() -> FileResponse:
    """The resident result query page (no token; nothing kept in the browser)."""
    return FileResponse(
        STATIC / "query.html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@router.get("/station")
async def station() -> FileResponse:
    """The sampling station (sampler token; keeps working offline)."""
    return FileResponse(STATIC / "station.html", headers={"Cache-Control": "no-cache"})


@router.get("/station-sw.js")
async def station_worker() -> FileResponse:
    """The station's service worker, served from the root so it may control /station."""
    return FileResponse(
        STATIC / "station-sw.js",
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
    )


@router.get("/lab")
async def lab_page() -> FileResponse:
    """The lab page: receive boxes, upload instrument files, today's uploads."""
    return FileResponse(STATIC / "lab.html", headers={"Cache-Control": "no-cache"})


@router.get("/me")
async def my_codes() -> FileResponse:
    """Residents' own page: register self and family, show each QR code (offline too)."""
    return FileResponse(
        STATIC / "me.html",
        headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"},
    )


@router.get("/me-sw.js")
async def my_codes_worker() -> FileResponse:
    """The /me page's service worker (scope /me), served from the root."""
    return FileResponse(
        STATIC / "me-sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )
