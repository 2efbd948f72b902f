"""The ``[serve]`` table of the clinic's settings, and when ``discharge serve`` may listen.

Declared with the settings schema (``discharge/settings_schema.py``), so it is checked with the
rest of the file when it is loaded. The login password never lives in the file:
``password_env`` names the environment variable that holds it.

Waitress, the server used here, does not encrypt connections itself. A page reachable from
other computers must be encrypted, so listening on anything but this computer (loopback)
requires a login and a TLS-terminating proxy (Caddy, nginx, IIS, a hospital load balancer) in
front, named by its address in ``tls_proxy``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from discharge.config import Config
from discharge.errors import ConfigError
from discharge.settings_schema import (
    Check,
    EnvName,
    Invalid,
    Number,
    Section,
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
    # Slow or idle clients must not take every connection (see web/server.py):
    # open connections at most, from everyone
    connection_limit: int = setting(_WHOLE, default=500)
    # from one computer (the tls_proxy: no limit)
    connections_per_address: int = setting(_WHOLE, default=40)
    header_seconds: float = setting(_POSITIVE, default=10.0)  # a request's headers, within this
    idle_seconds: float = setting(_POSITIVE, default=60.0)  # a connection with no request: closed

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
    if settings.password_env is None:
        missing.append("password_env (the environment variable holding the login password)")
    if settings.tls_proxy is None:
        missing.append(f"tls_proxy ({_NO_TLS_HERE})")
    if missing:
        raise ConfigError(
            f"--host {host} lets other computers reach patient data; the [serve] section of the "
            f"clinic settings must set {' and '.join(missing)}"
        )
