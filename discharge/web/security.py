"""Who may post, and the headers every response carries.

- A POST must come from this site's own pages: a cross-site ``Origin`` or ``Sec-Fetch-Site`` is
  refused, and every form carries a per-session CSRF token (403 otherwise).
- With ``[serve] password_env`` set, every page but the login asks for the shared password.
- Responses are never cached (they hold patient data); a Content-Security-Policy forbids any
  script at all, inline or not: the pages need none.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import Forbidden

bp = Blueprint("auth", __name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_OPEN_ENDPOINTS = {"auth.login", "static"}


class CrossSiteRefused(Forbidden):
    description = (
        "This form was sent from another website, or it is out of date. Open the form again "
        "from this page and send it from there."
    )


class StaleForm(CrossSiteRefused):
    """This site's own page, but its token is not this session's (e.g. the server restarted)."""


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_post() -> None:
    """Refuse a POST that did not come from one of this site's own pages."""
    if request.method != "POST":
        return
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        raise CrossSiteRefused()
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise CrossSiteRefused()
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        # Only when the browser says the post came from this site is it merely out of date.
        own = origin is not None or fetch_site == "same-origin"
        raise StaleForm() if own else CrossSiteRefused()


def require_login() -> Any:
    if current_app.config.get("PASSWORD") is None or request.endpoint in _OPEN_ENDPOINTS:
        return None
    if session.get("signed_in"):
        return None
    return redirect(url_for("auth.login"))


def secure_headers(response: Response) -> Response:
    if response.mimetype != "application/pdf":
        # HTML only: a PDF runs no page script here, and a strict policy on the PDF itself can
        # stop a browser's built-in viewer (some draw PDFs with their own HTML and script).
        # A view may set a stricter policy of its own (the patient's web page: only its
        # inline style, see render_html.CSP).
        response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on our own POSTs
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    password = current_app.config.get("PASSWORD")
    if password is None:
        return redirect(url_for("form.index"))
    problem = ""
    if request.method == "POST":
        throttle, account = current_app.extensions["discharge.throttle"], "shared"
        address = request.remote_addr or ""  # the nurse's computer, behind tls_proxy too
        if wait := throttle.wait(account, address):
            return too_many_tries(wait)
        if hmac.compare_digest(request.form.get("password", "").encode(), password.encode()):
            throttle.succeeded(account)
            session.clear()
            session.permanent = True
            session["signed_in"] = True
            return redirect(url_for("form.index"))
        throttle.failed(account, address)  # the password never appears in a log
        problem = "That password is not right. Try again."
    status = 401 if problem else 200
    return render_template("login.html", problem=problem), status


def too_many_tries(wait: int) -> Any:
    """Answered at once, the password unchecked (see throttle.py): no thread sleeps."""
    seconds = "1 second" if wait == 1 else f"{wait} seconds"
    problem = f"Too many tries. Wait {seconds}, then sign in again."
    page = render_template("login.html", problem=problem)
    return page, 429, {"Retry-After": str(wait)}


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    from discharge.web.throttle import SignInThrottle

    app.extensions["discharge.throttle"] = SignInThrottle()
    app.register_blueprint(bp)
    app.before_request(require_login)
    app.before_request(check_post)
    app.after_request(secure_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
