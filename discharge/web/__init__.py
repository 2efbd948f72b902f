"""``discharge serve``: the nurses' web form, as a Flask application.

``create_app`` builds it from the clinic's settings (the application-factory pattern), so a
test can make as many as it likes; ``discharge serve`` (commands/serve.py) runs it behind waitress.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from discharge.config import Config
from discharge.web.settings import OPEN, PROXY, ServeSettings

if TYPE_CHECKING:
    from flask import Flask, Response

# Flask is imported where it is used, not here: loading the clinic's settings imports
# discharge.web.settings (the [serve] section), and `discharge generate` must not pay for Flask.

log = logging.getLogger("discharge.web")


def create_app(
    config: Config | None = None,
    settings: ServeSettings | None = None,
    *,
    password: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Flask:
    """The web application for one clinic's settings.

    ``password``: the shared login password (None: no login, only for loopback), for
    ``[serve] sign_in = "password"``. ``overrides``: Flask settings, e.g. ``{"TESTING": True}``.
    """
    from flask import Flask

    from discharge.web import batch, form, security
    from discharge.web.emailing import form_email
    from discharge.web.jobs import JobManager
    from discharge.web.printing import form_print
    from discharge.web.rendering import Renderer

    config = config or Config()
    settings = settings or ServeSettings()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_cookie_key(settings, password),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.tls_proxy is not None,
        SESSION_COOKIE_NAME="discharge_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        MAX_CONTENT_LENGTH=int(settings.max_upload_mb * 1024 * 1024),
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        CLINIC=config,
        SERVE=settings,
        PASSWORD=password,
    )
    app.config.update(overrides or {})
    app.jinja_env.autoescape = True  # every template, whatever its name
    app.jinja_env.globals["clinic"] = config.clinic

    app.extensions["discharge.renderer"] = Renderer(config)
    app.extensions["discharge.email"] = form_email(config)  # None without [smtp]
    app.extensions["discharge.print"] = form_print(config)  # None without [print] printer
    app.extensions["discharge.jobs"] = JobManager(config, keep_minutes=settings.keep_minutes)
    security.init_app(app)
    app.register_blueprint(form.bp)
    app.register_blueprint(batch.bp)
    if settings.tls_proxy is not None:
        app.wsgi_app = _behind_proxy(app.wsgi_app, settings.tls_proxy)  # type: ignore[method-assign]
    app.register_error_handler(Exception, _error_page)
    app.before_request(_start_clock)
    app.after_request(_server_timing)
    return app


def _cookie_key(settings: ServeSettings, password: str | None) -> bytes:
    """The key signing the session cookie.

    With a sign-in, derived from the clinic's secret (a restart keeps everyone signed in: the
    sessions themselves are on the server) and the shared password, if any (a new password signs
    everyone out). Without one, random: a restart starts afresh, nothing to keep."""
    if settings.way_with(password) in (OPEN, PROXY):
        return secrets.token_bytes(32)
    from discharge.clinic_data import keyed_digest

    return bytes.fromhex(keyed_digest("web-session-cookie", password or "", length=64))


def _behind_proxy(app: Any, proxy: str) -> Any:
    """The TLS proxy's forwarded headers (client address, https, host), trusted from its own
    address only; the address the connection really came from is kept as ``security.PEER``,
    for the user header (trusted from the proxy only)."""
    from waitress.proxy_headers import proxy_headers_middleware

    from discharge.web.security import PEER

    translated = proxy_headers_middleware(
        app,
        trusted_proxy=proxy,
        trusted_proxy_headers={"x-forwarded-proto", "x-forwarded-host", "x-forwarded-for"},
        clear_untrusted=True,
    )

    def remember_peer(environ: dict[str, Any], start_response: Any) -> Any:
        environ[PEER] = environ.get("REMOTE_ADDR", "")
        return translated(environ, start_response)

    return remember_peer


def _start_clock() -> None:
    from flask import g

    g.started = time.perf_counter()


def _server_timing(response: Response) -> Response:
    # The time spent in the application (benchmarks/bench_serve.py reads it): no patient data.
    from flask import g

    started = g.get("started")
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _error_page(exc: Exception) -> Any:
    """Every error as a calm page; logged by its type only (messages may quote patient data)."""
    from flask import Response, render_template
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, SecurityError

    if isinstance(exc, SecurityError):  # a Host that is not this server's: no page, no links
        return Response("Bad request\n", 400, mimetype="text/plain")
    if isinstance(exc, RequestEntityTooLarge):
        from flask import current_app, request

        limit = current_app.config["SERVE"].max_upload_mb
        size = (request.content_length or 0) / (1024 * 1024)
        shown = f"{size:.0f}" if size >= 10 else f"{size:.1f}".removesuffix(".0")
        message = (
            f"The file is {shown} MB; the largest schedule this server takes is {limit:g} MB. "
            "Split the schedule into smaller files, or ask IT to raise max_upload_mb."
        )
        return render_template("error.html", title="File too large", message=message), 413
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        return render_template("error.html", title=exc.name, message=exc.description), code
    log.error("internal error while serving a page (%s)", type(exc).__name__)
    message = "Something went wrong on the server. Try again; if it keeps happening, tell IT."
    return render_template("error.html", title="Something went wrong", message=message), 500
