"""What every web page shares: the templates, the signed-in session, CSRF tokens and the security headers.

CSRF: a random nonce lives in an HttpOnly cookie; each form carries its HMAC (`csrf_token`, signed with the
service's secret key), and scripts send it as `X-CSRF-Token`. A form is taken only when the two agree and,
if the browser says where the form came from (`Origin`), it came from here. The session cookie is HttpOnly,
SameSite=Lax, and Secure unless the service is reached on the local machine.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from datasources import signin
from datasources.db.models import WebSession
from datasources.errors import Forbidden
from datasources.secrets import Sealer

HERE = Path(__file__).parent
SESSION_COOKIE = "pricegraph_session"
CSRF_COOKIE = "pricegraph_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_PURPOSE = "form"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
NONCE = "pricegraph.csrf_nonce"
SIGNED_IN = "pricegraph.web_session"


def templates() -> Jinja2Templates:
    return Jinja2Templates(directory=HERE / "templates")


def secure(request: Request) -> bool:
    return (request.url.hostname or "") not in LOCAL_HOSTS or request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure(request), path="/")


def _nonce(request: Request) -> str:
    nonce = request.scope.get(NONCE) or request.cookies.get(CSRF_COOKIE)
    if not nonce:
        nonce = secrets.token_urlsafe(24)
        request.scope[NONCE + ".new"] = True
    request.scope[NONCE] = nonce
    return str(nonce)


def csrf_token(request: Request) -> str:
    sealer: Sealer = request.app.state.sealer
    return sealer.sign(_nonce(request), CSRF_PURPOSE)


def check_csrf(request: Request, form: FormData | None = None) -> None:
    """Refuses (403) a form or script call without this browser's token, or sent from another site (an
    `Origin` other than this server's as the request reached it, or PUBLIC_URL)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        allowed = {f"{request.url.scheme}://{request.url.netloc}", request.app.state.public_url}
        if origin.rstrip("/") not in allowed:
            raise Forbidden("this form was sent from another site")
    sent = request.headers.get(CSRF_HEADER) or (str(form.get(CSRF_FIELD) or "") if form is not None else "")
    nonce = request.cookies.get(CSRF_COOKIE)
    sealer: Sealer = request.app.state.sealer
    if not sent or not nonce or not sealer.verify(nonce, sent, CSRF_PURPOSE):
        raise Forbidden("the form's security token is missing or out of date: reload the page and try again")


async def signed_in(request: Request) -> WebSession | None:
    if SIGNED_IN in request.scope:
        found: WebSession | None = request.scope[SIGNED_IN]
        return found
    cookie = request.cookies.get(SESSION_COOKIE)
    found = None
    if cookie:
        async with request.app.state.sessionmaker() as session:
            found = await signin.current(session, cookie)
    request.scope[SIGNED_IN] = found
    return found


def page_data(value: Any) -> str:
    """JSON for a `<script type="application/json">` block: nothing in it can close the element."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
    private: bool = False,
) -> Response:
    """A page: the template with the CSRF token and the signed-in account, the CSRF cookie when new, and the
    security headers; `private` pages (the console) are never cached."""
    token = csrf_token(request)
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        template,
        {"csrf_token": token, "csrf_field": CSRF_FIELD, "signed_in": request.scope.get(SIGNED_IN), **context},
        status_code=status,
    )
    if request.scope.get(NONCE + ".new"):
        set_cookie(request, response, CSRF_COOKIE, request.scope[NONCE])
    response.headers.update(SECURITY_HEADERS)
    if private:
        response.headers["Cache-Control"] = "no-store"
    return response
