"""Dashboard HTML pages and their static files (Plotly from the installed package, no CDN).

Pages carry no data: their scripts fetch the JSON endpoints (``/api/metrics/*``, ``/metrics/*``,
``/insights/*``, ``/v1/subscriptions/*``, ``/ops/*``, ``/health``), so what a chart shows is exactly
what the API answers.
"""

from pathlib import Path

import plotly
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from resources.settings import DashboardSettings

router = APIRouter(prefix="/dashboard", include_in_schema=False)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
templates = Jinja2Templates(directory=HERE / "templates")

# Page name -> navigation title, in menu order.
PAGES: dict[str, str] = {
    "commerce": "Commerce",
    "exports": "Exports",
    "usage": "AI usage",
    "subscriptions": "Subscriptions",
    "operations": "Operations",
    "lineage": "Column lineage",
}
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}


def _static_files() -> dict[str, Path]:
    files = {path.name: path for path in STATIC_DIR.iterdir() if path.suffix in _MEDIA_TYPES}
    files["plotly.min.js"] = PLOTLY_JS
    return files


STATIC_FILES = _static_files()


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """Only the files listed at import are served (a name never becomes a path)."""
    path = STATIC_FILES.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    return FileResponse(
        path, media_type=_MEDIA_TYPES[path.suffix], headers={"Cache-Control": "public, max-age=3600"}
    )


def _render(request: Request, page: str) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "page": page,
            "pages": PAGES,
            "title": PAGES.get(page, "Overview"),
            "refresh_seconds": max(5, DashboardSettings.current().refresh_seconds),
            "dagster_ui_url": DashboardSettings.current().dagster_ui_url.rstrip("/"),
        },
    )


@router.get("", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    return _render(request, "index")


@router.get("/{page}", response_class=HTMLResponse)
def page(request: Request, page: str) -> HTMLResponse:
    if page not in PAGES:
        raise HTTPException(status_code=404, detail=f"no dashboard page {page!r}; pages: {list(PAGES)}")
    return _render(request, page)
