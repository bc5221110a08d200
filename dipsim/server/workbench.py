"""The browser workbench of `dipsim serve`: plain HTML and JavaScript pages (no build step) served from the
package's `static/` folder at /app/, on top of the same API. Nothing is loaded from elsewhere: the charting library
(Apache ECharts) is vendored in static/vendor/echarts/ (version and sha256 in its VERSION.md).

The pages hold no data: they are the same files for everyone, so /app/ needs no token. Every number and name on
them comes from the API with the user's bearer token (kept in the tab's sessionStorage, sent as the Authorization
header: no cookie, so no cross-site request can carry it), and is inserted as text, never as HTML.

`GET /api/labels` gives the pages what they need to read like the static report and the Excel exports
(`report.present`): the hospital levels in their natural order, column labels, coded values' labels.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
APP_PATH = "/app"
# The pages' policy: scripts, styles, images and API calls from this server only; no frames, no plugins, no forms
# posted elsewhere. Inline styles are allowed (ECharts positions its tooltip with them); inline scripts are not.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
                           "base-uri 'none'; form-action 'self'")


class Pages(StaticFiles):
    """The package's static files, with the pages' Content-Security-Policy."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        return response


def labels(lang: str = "zh") -> dict:
    """What the pages show instead of codes (`report.present`): levels in order, column labels and kinds, coded
    values, hospital types."""
    from dipsim.report import present
    from dipsim.schema import HOSPITAL_TYPES

    return {"levels": list(present.LEVEL_ORDER), "level_aliases": present.LEVEL_ALIASES,
            "types": list(HOSPITAL_TYPES),
            "columns": {name: {"zh": c.zh, "en": c.en, "kind": c.kind} for name, c in present.COLUMNS.items()},
            "values": present.VALUES, "baseline": {"zh": "基准方案", "en": "baseline"}}


def add_workbench(app: FastAPI, caller) -> None:
    """Mount the pages at /app/ (open: no data in them), redirect / there, and add GET /api/labels (a token
    needed, like every data route). `caller`: the dependency that gives the logged-in user (401 without one)."""

    @app.get("/api/labels", tags=["workbench"], dependencies=[Depends(caller)])
    def workbench_labels() -> dict:
        """Labels for the pages: hospital levels in their natural order, column labels (zh / en) and kinds."""
        return labels()

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{APP_PATH}/", status_code=307)

    app.mount(APP_PATH, Pages(directory=STATIC_DIR, html=True), name="workbench")
