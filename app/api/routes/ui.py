"""The dashboard at ``/ui/`` and the interactive docs at ``/docs`` and ``/redoc``, all served
from files shipped in the package (``app/ui/static``): no page loads anything from another
host, so both work on a machine without internet."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from app.ui import STATIC_DIR, VENDOR_PREFIX

router = APIRouter(include_in_schema=False)

# The dashboard talks to this service only; a CSP makes the browser refuse anything else too.
_CSP = ("default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
        "style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'")
# Swagger UI starts from an inline script, ReDoc runs a worker from a blob: URL. The vendored
# ReDoc's CDN logo is patched out (scripts/vendor-assets); the CSP would refuse it anyway.
_DOCS_CSP = ("default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
             "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline' blob:; "
             "worker-src 'self' blob:; font-src 'self' data:; object-src 'none'; "
             "base-uri 'none'")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} — API docs",
        swagger_js_url=f"{VENDOR_PREFIX}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR_PREFIX}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR_PREFIX}/swagger-ui/favicon-32x32.png",
        # validatorUrl null: Swagger UI would otherwise send the spec to an online validator.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False})
    page.headers["Content-Security-Policy"] = _DOCS_CSP
    return page


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} — ReDoc",
        redoc_js_url=f"{VENDOR_PREFIX}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{VENDOR_PREFIX}/swagger-ui/favicon-32x32.png",
        with_google_fonts=False)
    page.headers["Content-Security-Policy"] = _DOCS_CSP
    return page


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/")
@router.get("/ui/jobs/{job_id}")
@router.get("/ui/{page}")
async def ui_page() -> FileResponse:
    """Every dashboard page is the same shell; ``app.js`` routes on ``location.pathname``."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Mount the static files and the pages (the app is built with docs_url=None)."""
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.include_router(router)
