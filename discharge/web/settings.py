"""The ``[serve]`` table of the clinic's settings, and when ``discharge serve`` may listen.

Declared with the settings schema (``discharge/settings_schema.py``), so it is checked with the
rest of the file when it is loaded. The login password never lives in the file:
``password_env`` names the environment variable that holds it. ``sign_in`` chooses how nurses
sign in (see ``SIGN_IN``).

Waitress, the server used here, does not encrypt connections itself. A page reachable from
other computers must be encrypted, so listening on anything but this computer (loopback)
requires a login and a TLS-terminating proxy (Caddy, nginx, IIS, a hospital load balancer) in
front, named by its address in ``tls_proxy``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from discharge.config import Config
from discharge.errors import ConfigError
from discharge.settings_schema import (
    Check,
    Choice,
    EnvName,
    Invalid,
    Number,
    Section,
    Text,
    Where,
    Whole,
    setting,
)

_NO_TLS_HERE = (
    "this server does not encrypt by itself: put a TLS-terminating proxy in front and give its "
    "address as tls_proxy"
)


def _ip_address(value: Any, where: Where) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise Invalid(f"{value!r} is not an IP address (the proxy's)") from None


_POSITIVE = Number(above=0, problem="must be a positive number")
_WHOLE = Whole(least=1, problem="must be a whole number, 1 or more")
# How nurses sign in (README "Signing in"): the shared ward password (password_env; none at
# all on loopback), each her own local account (discharge users), or the hospital's single
# sign-on, whose TLS proxy names the nurse in user_header.
OPEN, SHARED, ACCOUNTS, PROXY = "open", "password", "accounts", "proxy"  # OPEN: no sign-in
SIGN_IN = (SHARED, ACCOUNTS, PROXY)


def _way(sign_in: str | None, user_header: str | None) -> str:
    """``sign_in``, else what the other keys say."""
    return sign_in or (PROXY if user_header is not None else SHARED)


_HEADER = Text(
    strip=True,
    pattern=r"[A-Za-z0-9-]{1,64}",
    problem='must be the name of an HTTP header, e.g. "X-Remote-User"',
)


@dataclass(frozen=True)
class ServeSettings(Section):
    """The ``[serve]`` section."""

    NAME: ClassVar[str] = "serve"
    UNSUPPORTED: ClassVar[Mapping[str, str]] = {
        "tls_cert": _NO_TLS_HERE,
        "tls_key": _NO_TLS_HERE,
        "password": "use password_env",
    }

    # the NAME of the environment variable with the password
    password_env: str | None = setting(EnvName(), default=None)
    # the address of the TLS-terminating proxy in front, if any
    tls_proxy: str | None = setting(Check(_ip_address), default=None)
    max_upload_mb: float = setting(_POSITIVE, default=5.0)  # the largest schedule to upload
    keep_minutes: float = setting(_POSITIVE, default=30.0)  # a batch's files go this long after
    session_hours: float = setting(_POSITIVE, default=12.0)  # a login lasts one shift
    # signed out after this long without a request: a walked-away-from screen is not hers
    session_idle_minutes: float = setting(_POSITIVE, default=30.0)
    # how nurses sign in, one of SIGN_IN; not given: "proxy" with a user_header, else "password"
    sign_in: str | None = setting(Choice(SIGN_IN), default=None)
    # sign_in "proxy": the header in which the TLS proxy names the signed-in nurse
    user_header: str | None = setting(_HEADER, default=None)
    # Slow or idle clients must not take every connection (see web/server.py):
    # open connections at most, from everyone
    connection_limit: int = setting(_WHOLE, default=500)
    # from one computer (the tls_proxy: no limit)
    connections_per_address: int = setting(_WHOLE, default=40)
    header_seconds: float = setting(_POSITIVE, default=10.0)  # a request's headers, within this
    idle_seconds: float = setting(_POSITIVE, default=60.0)  # a connection with no request: closed

    @property
    def way(self) -> str:
        """How nurses sign in: ``sign_in``, else what the other keys say."""
        return _way(self.sign_in, self.user_header)

    def way_with(self, password: str | None) -> str:
        """How nurses sign in, the shared password read: OPEN when the shared password's way
        has none (loopback only)."""
        return OPEN if self.way == SHARED and password is None else self.way

    @property
    def login_required(self) -> bool:
        return self.way != SHARED or self.password_env is not None

    @classmethod
    def relations(cls, values: Mapping[str, Any], where: Where) -> Iterator[tuple[str, str]]:
        """The settings of one way to sign in, and none of another's."""
        given, header = values.get("sign_in"), values.get("user_header")
        if "sign_in" not in values or "user_header" not in values:
            return  # a wrong value: its problem is named already
        way = _way(given, header)
        if way == PROXY:
            if header is None:
                yield "sign_in", '"proxy" needs user_header (e.g. "X-Remote-User")'
            if values.get("tls_proxy", "") is None:
                yield (
                    "sign_in",
                    '"proxy" needs tls_proxy: the user header is trusted only from the '
                    "proxy's address",
                )
        elif header is not None:
            yield "user_header", f'is only read with sign_in = "proxy" (not "{way}")'
        if way != SHARED and values.get("password_env") is not None:
            yield "password_env", f'is only read with sign_in = "password" (not "{way}")'

    def read_password(self) -> str | None:
        """The login password from the environment (None: no login required)."""
        if self.password_env is None:
            return None
        password = os.environ.get(self.password_env, "")
        if not password:
            raise ConfigError(
                f"serve.password_env names the environment variable {self.password_env}, "
                "which is not set or empty (expected the login password)"
            )
        return password


def load_serve_settings(config: Config) -> ServeSettings:
    """The ``[serve]`` section (checked when the settings were loaded), else the defaults."""
    return config.section(ServeSettings) or ServeSettings()


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, settings: ServeSettings) -> None:
    """Refuse to listen beyond this computer without a login and encryption in front."""
    if is_loopback(host):
        return
    missing = []
    if not settings.login_required:
        missing.append(
            "a sign-in: password_env (the environment variable holding the shared password), "
            'or sign_in = "accounts" or "proxy"'
        )
    if settings.tls_proxy is None:
        missing.append(f"tls_proxy ({_NO_TLS_HERE})")
    if missing:
        raise ConfigError(
            f"--host {host} lets other computers reach patient data; the [serve] section of the "
            f"clinic settings must set {' and '.join(missing)}"
        )
