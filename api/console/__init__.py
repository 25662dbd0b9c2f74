"""The console (issue 15, part 6): server-rendered pages for the people who act on
alerts, on the API's own server, sessions and checks. No front-end build: Jinja2
templates, a CSS file, and charts drawn server-side as inline SVG.

:func:`install_console` adds it to an app: the pages under ``/console``, their static
files under ``/console/static``, and the redirect to the login page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.console.errors import LoginRequired
from api.console.routes import PREFIX, logged_out, router

STATIC = Path(__file__).parent / "static"


def install_console(app: FastAPI) -> None:
    """Serve the console from ``app``."""
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return logged_out()


__all__ = ["LoginRequired", "install_console"]
