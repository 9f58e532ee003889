"""Signing in and out of the console: ask for a link, open it, confirm, and the session cookie.

Opening the e-mailed link shows a button rather than signing in at once: mail scanners that fetch links
would otherwise use the one-time token before the person does.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from datasources import signin
from datasources.errors import DomainError, QuotaExceeded
from routing.web.browser import SESSION_COOKIE, check_csrf, render, set_cookie, signed_in


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _base_url(request: Request) -> str:
    configured: str | None = request.app.state.public_url
    return configured or str(request.base_url).rstrip("/")


async def sign_in_form(request: Request) -> Response:
    if await signed_in(request) is not None:
        return RedirectResponse("/console", status_code=303)
    return render(request, "sign_in.html", {"email": ""})


async def ask_for_link(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip()
    try:
        check_csrf(request, form)
        async with request.app.state.sessionmaker() as session, session.begin():
            await signin.request_link(
                session,
                request.app.state.sealer,
                email,
                _client(request),
                _base_url(request),
                request.app.state.sign_in,
            )
    except DomainError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QuotaExceeded) else {}
        response = render(request, "sign_in.html", {"email": email, "error": exc.describe()}, status=exc.status)
        response.headers.update(headers)
        return response
    request.app.state.outbox.wake()
    minutes = request.app.state.sign_in.link_minutes
    return render(request, "sign_in_sent.html", {"email": email, "minutes": minutes})


async def confirm_link(request: Request) -> Response:
    token = request.query_params.get("token", "")
    return render(request, "sign_in_confirm.html", {"token": token}, private=True)


async def use_link(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("token") or "")
    device = signin.device_of(request.headers.get("user-agent", ""), _client(request))
    try:
        check_csrf(request, form)
        async with request.app.state.sessionmaker() as session, session.begin():
            started = await signin.sign_in(session, request.app.state.sealer, token, device, request.app.state.sign_in)
    except DomainError as exc:
        return render(request, "sign_in.html", {"email": "", "error": exc.describe()}, status=exc.status)
    if started.new_device:
        request.app.state.outbox.wake()
    response = RedirectResponse("/console", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, started.token, max_age=request.app.state.sign_in.session_days * 86400)
    return response


async def sign_out(request: Request) -> Response:
    form = await request.form()
    try:
        check_csrf(request, form)
    except DomainError as exc:
        return render(request, "sign_in.html", {"email": "", "error": exc.describe()}, status=exc.status)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with request.app.state.sessionmaker() as session, session.begin():
            await signin.sign_out(session, cookie)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
