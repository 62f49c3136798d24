"""The web dashboard: the static assets under ``api/ui`` served at ``/ui``, with strict security headers."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_DIR = Path(__file__).parent / "ui"
# Scripts, styles and data only from this origin: no inline script can run even if a value slipped
# into the page as markup. The API key is sent by the page's own fetch() calls, never by the browser.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
UI_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate (ETag) on every load: an upgraded server never runs last version's scripts.
    "Cache-Control": "no-cache",
}


class SecurityHeaders:
    """Pure ASGI wrapper adding ``UI_HEADERS`` to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in UI_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/ui`` (no auth: the page asks for an API key and calls ``/v1``)."""

    @app.get("/ui", include_in_schema=False)
    def dashboard_redirect() -> RedirectResponse:
        # Relative asset URLs in index.html resolve against /ui/, never /.
        return RedirectResponse("/ui/", status_code=307)

    # html=True: /ui/ answers index.html.
    app.mount("/ui", SecurityHeaders(StaticFiles(directory=UI_DIR, html=True)), name="ui")
