"""The console's web application: sessions, CSRF, security headers, login and its limit.

Every page needs a logged-in session (a random token in an HttpOnly, SameSite=Strict cookie; only
its hash is stored). Every POST must carry the session's CSRF token and, when the browser says where
it comes from (Origin, Sec-Fetch-Site), come from the console itself. The login form has its own
token (a double-submit cookie), so a login cannot be forced from another site either. Pages live in
voicebot/console/pages.py."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from voicebot.config import Settings
from voicebot.console import auth, store
from voicebot.console.auth import LoginLimiter
from voicebot.dialplan.versions import VersionStore
from voicebot.logs import get_logger
from voicebot.supervisor.health import Snapshot

log = get_logger(__name__)

COOKIE = "vb_session"
LOGIN_COOKIE = "vb_login"
STATIC = Path(__file__).with_name("static")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Context:
    settings: Settings
    run_dir: Path
    health: Callable[[], Snapshot] | None
    engine: AsyncEngine
    db: async_sessionmaker[AsyncSession]
    versions: VersionStore
    shared_url: str  # "" when the dialplan versions are not shared through the database
    limiter: LoginLimiter
    jinja: Environment
    https: bool  # cookies are Secure-only

    @property
    def slots(self) -> int:
        return self.settings.workers.ua_workers * self.settings.workers.calls_per_ua


CTX = web.AppKey("console", Context)


def jinja_env() -> Environment:
    env = Environment(
        loader=PackageLoader("voicebot.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["can"] = auth.can
    return env


def client(request: web.Request) -> str:
    """The client's address; behind an HTTPS proxy on this host, the proxy's X-Forwarded-For hop."""
    remote = request.remote or "?"
    ctx = request.app[CTX]
    if ctx.settings.console.behind_https_proxy and remote in ("127.0.0.1", "::1"):
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64]
    return remote


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    ctx = request.app[CTX]
    who = request.get("who")
    page = ctx.jinja.get_template(template).render(
        who=who, csrf=who.csrf if who else "", path=request.path, node=ctx.settings.node_id, **values
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def set_cookie(response: web.StreamResponse, ctx: Context, name: str, value: str, path: str = "/") -> None:
    response.set_cookie(
        name, value, path=path, httponly=True, samesite="Strict", secure=ctx.https, max_age=None
    )


def _same_origin(request: web.Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # a client that does not say: the CSRF token alone decides
    return urlsplit(origin).netloc == request.host


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is asking (from the session cookie); pages need a session; POSTs need the CSRF token."""
    ctx = request.app[CTX]
    request["who"] = None
    if request.path.startswith("/static/"):  # the stylesheet: no session needed, no database asked
        return await handler(request)
    token = request.cookies.get(COOKIE)
    if token:
        async with ctx.db() as session, session.begin():
            request["who"] = await store.find_session(
                session, token, ctx.settings.console.session_idle_s, ctx.settings.console.session_max_s
            )
    if request.path == "/favicon.ico":
        raise web.HTTPNotFound()
    if request["who"] is None and request.path != "/login":
        if request.method == "GET":
            raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe=""))
        return render(request, "error.html", 403, message="Log in first.")
    if request.method == "POST":
        if not _same_origin(request):
            return render(
                request, "error.html", 403, message="Refused: the form did not come from this console."
            )
        if request.path != "/login":
            form = await request.post()
            if not auth.same(str(form.get("csrf", "")), request["who"].csrf):
                return render(
                    request, "error.html", 403, message="Refused: the form's token is missing or stale."
                )
    return await handler(request)


async def headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if request.app[CTX].https:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"


def _next(target: str) -> str:
    """Where to go after logging in: a path of this console only (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


async def login_page(request: web.Request) -> web.StreamResponse:
    return await _login_form(request, "", 200)


async def _login_form(request: web.Request, message: str, status: int, name: str = "") -> web.Response:
    ctx = request.app[CTX]
    async with ctx.db() as session:
        nobody = not await store.users(session)
    # the same token for every login page this browser loads (a favicon fetch that lands here must
    # not invalidate the form already on screen)
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
        token = auth.new_token()
    response = render(
        request,
        "login.html",
        status,
        login_csrf=token,
        message=message,
        name=name,
        next=_next(request.query.get("next", "/")),
        nobody=nobody,
    )
    set_cookie(response, ctx, LOGIN_COOKIE, token, path="/login")
    return response


async def login(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    form = await request.post()
    name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))[:1024]
    if not auth.same(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "") or "\x00"):
        return await _login_form(request, "The form expired: try again.", 403, name)
    source = client(request)
    keys = [f"addr:{source}", f"user:{name}"]
    now = time.monotonic()
    wait = ctx.limiter.wait_s(keys, now)
    if wait > 0:
        async with ctx.db() as session, session.begin():
            await store.audit(
                session, name, "login_refused", ok=False, source=source, detail={"why": "rate limit"}
            )
        response = await _login_form(
            request, f"Too many failed logins: try again in {wait:.0f} s.", 429, name
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    async with ctx.db() as session, session.begin():
        user = await store.authenticate(session, name, password)
        if user is None:
            ctx.limiter.failed(keys, now)
            await store.audit(session, name, "login_failed", ok=False, source=source)
        else:
            ctx.limiter.succeeded(f"user:{name}")
            cs = ctx.settings.console
            await store.purge_sessions(session, cs.session_idle_s, cs.session_max_s)
            token, _ = await store.open_session(session, user.name)
            await store.audit(session, user.name, "login", source=source, detail={"role": user.role})
    if user is None:
        log.info("console.login_failed", user=name, source=source)
        return await _login_form(request, "Wrong user name or password.", 401, name)
    log.info("console.login", user=user.name, role=user.role, source=source)
    response = web.HTTPSeeOther(_next(str(form.get("next", "/"))))
    set_cookie(response, ctx, COOKIE, token)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    async with ctx.db() as session, session.begin():
        await store.close_session(session, request.cookies.get(COOKIE, ""))
        await store.audit(session, request["who"].user, "logout", source=client(request))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    return response


def build(ctx: Context) -> web.Application:
    from voicebot.console import pages

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[CTX] = ctx
    app.on_response_prepare.append(headers)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
    pages.add_routes(app)
    return app
