"""Who is signing in, who may post, and the headers every response carries.

- Who: ``[serve] sign_in`` (web/settings.py) chooses one of three ways (README "Signing in"):
  ``password``, the shared ward password from ``password_env``, signed in as user ``shared``
  (no password: no sign-in, only on loopback); ``accounts``, each nurse her own local account
  (``discharge users``); ``proxy``, the hospital's single sign-on, whose TLS proxy names the
  nurse in ``user_header`` (trusted from ``tls_proxy``'s address only). Every request runs as
  its user (``audit.acting_as``), so each audit record says who.
- Sessions are held on the server (``discharge.accounts``): the signed cookie carries a random
  session id, the server its hash, the user and when it ends. Signing out, disabling the user,
  the end of ``session_hours`` or ``session_idle_minutes`` without a request deletes it: a copy
  of the cookie then opens nothing. An idle end is an audit record (``signed-out``) and the
  sign-in page says why.
- Every sign-in, sign-out and failed sign-in (the name tried and the address, never the
  password) is an audit record.
- A POST must come from this site's own pages: a cross-site ``Origin`` or ``Sec-Fetch-Site`` is
  refused, and every form carries a per-session CSRF token (403 otherwise).
- Responses are never cached (they hold patient data); a Content-Security-Policy forbids any
  script at all, inline or not: the pages need none.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import Forbidden

from discharge.accounts import SHARED_USER, Accounts, normalise_name
from discharge.audit import SIGN_IN_FAILED, SIGNED_IN, SIGNED_OUT, AuditLog, AuditRecord, acting_as
from discharge.web.settings import ACCOUNTS, OPEN, PROXY, SHARED

bp = Blueprint("auth", __name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_OPEN_ENDPOINTS = {"auth.login", "static"}
# The WSGI environ key holding the address the connection came from, before the proxy's
# X-Forwarded-For replaced REMOTE_ADDR (set in web/__init__.py).
PEER = "discharge.peer"


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


class NotThroughProxy(Forbidden):
    description = (
        "This form is opened through the hospital's sign-on only. Use the address IT gave you."
    )


class NoUserFromProxy(Forbidden):
    description = (
        "The hospital's sign-on did not say who you are. Sign in to it again; if this keeps "
        "happening, tell IT."
    )


def _accounts() -> Accounts:
    accounts: Accounts = current_app.extensions["discharge.accounts"]
    return accounts


def identify() -> Any:
    """Who this request is from; a redirect to the sign-in page, or 403, if no one is."""
    way = current_app.config["SIGN_IN"]
    user: str | None = None
    if way == PROXY:
        user = _user_from_proxy()
    elif way != OPEN and request.endpoint not in _OPEN_ENDPOINTS:
        user = _session_user(way)
        if user is None:
            session.pop("sid", None)
            return redirect(url_for("auth.login"))
    g.user = user
    if user is not None:  # records written for this request name her (until teardown)
        g.acting = stack = contextlib.ExitStack()
        stack.enter_context(acting_as(user))
    return None


def _forget_user(exc: BaseException | None) -> None:
    stack = g.pop("acting", None)
    if stack is not None:
        stack.close()


def _session_user(way: str) -> str | None:
    sid = session.get("sid")
    if not isinstance(sid, str):
        return None
    minutes = current_app.config["SERVE"].session_idle_minutes
    found = _accounts().check_session(sid, idle=timedelta(minutes=minutes))
    if found.idle_ended:
        _record(SIGNED_OUT, found.idle_ended, reason=f"not used for {_minutes(minutes)}")
        session["idle_ended"] = _minutes(minutes)  # for the sign-in page to say why
    user = found.user
    # A session made under the other way (the clinic changed sign_in) is not this one's.
    if user is None or (user == SHARED_USER) != (way == SHARED):
        return None
    return user


def _minutes(minutes: float) -> str:
    shown = f"{minutes:g}"
    return f"{shown} minute" if shown == "1" else f"{shown} minutes"


def _user_from_proxy() -> str:
    settings = current_app.config["SERVE"]
    peer = request.environ.get(PEER, request.remote_addr)
    named = request.headers.get(settings.user_header)
    if peer != settings.tls_proxy:
        if named is not None:  # someone naming a user without the proxy: on the record
            _record_failure(_clean_name(named), "the user header came from an address that "
                            f"is not the TLS proxy ({peer})")  # fmt: skip
        raise NotThroughProxy()
    user = _clean_name(named or "")
    if not user:
        raise NoUserFromProxy()
    return user


def _clean_name(text: str) -> str:
    """A user name as given (header, form), made safe to record: no control characters."""
    return "".join(c for c in normalise_name(text) if c.isprintable())[:128]


def _record(action: str, user: str, **detail: str) -> None:
    entry = AuditRecord(
        action=action, channel="web", user=user,
        detail=json.dumps({"address": request.remote_addr or "", **detail}, ensure_ascii=False),
    )  # fmt: skip
    with AuditLog.open(current_app.config["CLINIC"]) as audit:
        audit.record(entry)


def _record_failure(user: str, reason: str) -> None:
    _record(SIGN_IN_FAILED, user or "(no name)", reason=reason)


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
    way = current_app.config["SIGN_IN"]
    if way not in (SHARED, ACCOUNTS):  # nothing to sign in to here
        return redirect(url_for("form.index"))
    problem, name = "", ""
    if request.method == "POST":
        name = SHARED_USER if way == SHARED else _clean_name(request.form.get("name", ""))
        throttle, address = current_app.extensions["discharge.throttle"], request.remote_addr or ""
        if wait := throttle.wait(name, address):  # before any password is checked
            return too_many_tries(wait, name, way == ACCOUNTS)
        user = _check_password(way, name, request.form.get("password", ""))
        if user is not None:
            throttle.succeeded(name)
            _start_session(user)
            return redirect(url_for("form.index"))
        throttle.failed(name, address)  # the password never appears in a log
        _record_failure(name, "wrong name or password" if way == ACCOUNTS else "wrong password")
        problem = (
            "That name and password do not match an account. Try again."
            if way == ACCOUNTS
            else "That password is not right. Try again."
        )
    idle = session.pop("idle_ended", None) if not problem else None
    notice = (
        f"You were signed out because the form was not used for {idle}. Sign in again."
        if isinstance(idle, str)
        else ""
    )
    page = render_template(
        "login.html", problem=problem, name=name, accounts=way == ACCOUNTS, notice=notice
    )
    return page, 401 if problem else 200


def _check_password(way: str, name: str, password: str) -> str | None:
    """The user signing in, if the password is right; None if not."""
    if way == SHARED:
        expected = str(current_app.config["PASSWORD"])
        right = hmac.compare_digest(password.encode(), expected.encode())
        return SHARED_USER if right else None
    return _accounts().authenticate(name, password) if name else None


def _start_session(user: str) -> None:
    hours = current_app.config["SERVE"].session_hours
    old = session.get("sid")
    if isinstance(old, str):
        _accounts().end_session(old)
    session.clear()  # a new id and a new CSRF token: nothing from before signing in carries on
    session.permanent = True
    session["sid"] = _accounts().start_session(user, hours)
    _record(SIGNED_IN, user)


def too_many_tries(wait: int, name: str, accounts: bool) -> Any:
    """Answered at once, the password unchecked (see throttle.py): no thread sleeps."""
    seconds = "1 second" if wait == 1 else f"{wait} seconds"
    problem = f"Too many tries. Wait {seconds}, then sign in again."
    page = render_template("login.html", problem=problem, name=name, accounts=accounts)
    return page, 429, {"Retry-After": str(wait)}


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    sid = session.get("sid")
    if isinstance(sid, str) and current_app.config["SIGN_IN"] in (SHARED, ACCOUNTS):
        _accounts().end_session(sid)  # a copy of this cookie opens nothing from now on
        if g.get("user"):
            _record(SIGNED_OUT, g.user)
    session.clear()
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    from discharge.web.throttle import SignInThrottle

    app.config["SIGN_IN"] = way = app.config["SERVE"].way_with(app.config.get("PASSWORD"))
    if way in (SHARED, ACCOUNTS):
        app.extensions["discharge.accounts"] = Accounts()
    app.extensions["discharge.throttle"] = SignInThrottle()
    app.register_blueprint(bp)
    app.before_request(identify)
    app.before_request(check_post)
    app.after_request(secure_headers)
    app.teardown_request(_forget_user)
    app.jinja_env.globals["csrf_token"] = csrf_token
