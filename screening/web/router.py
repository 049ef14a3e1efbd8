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
