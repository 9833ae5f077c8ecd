"""The business dashboard served by the read API under ``/dashboard``.

HTML pages (``pages.py``, Jinja2 templates) whose JavaScript fetches the JSON API the app already
serves and draws it with Plotly (served from the installed ``plotly`` package: no CDN), plus the
few JSON endpoints only the dashboard needs (``data.py``: column lineage, exports per sector).
``api.app.ROUTER_MODULES`` mounts :data:`router`.
"""

from fastapi import APIRouter

from api.dashboard.data import router as data_router
from api.dashboard.pages import router as pages_router

router = APIRouter()
router.include_router(data_router)
router.include_router(pages_router)
