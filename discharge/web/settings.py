"""The ``[serve]`` table of the clinic's settings, and when ``discharge serve`` may listen.

Like ``[smtp]``, the table stays raw in ``Config.extra`` until ``discharge serve`` reads it; every
problem is reported at once. The login password never lives in the file: ``password_env`` names
the environment variable that holds it.

Waitress, the server used here, does not encrypt connections itself. A page reachable from
other computers must be encrypted, so listening on anything but this computer (loopback)
requires a login and a TLS-terminating proxy (Caddy, nginx, IIS, a hospital load balancer) in
front, named by its address in ``tls_proxy``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any

from discharge.config import Config
from discharge.errors import ConfigError

_KEYS = {"password_env", "tls_proxy", "max_upload_mb", "keep_minutes", "session_hours",
         "connection_limit", "connections_per_address", "header_seconds",
         "idle_seconds"}  # fmt: skip
_WHOLE_NUMBERS = {"connection_limit", "connections_per_address"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_TLS_HERE = (
    "this server does not encrypt by itself: put a TLS-terminating proxy in front and give its "
    "address as tls_proxy"
)


@dataclass(frozen=True)
class ServeSettings:
    password_env: str | None = None  # the NAME of the environment variable with the password
    tls_proxy: str | None = None  # the address of the TLS-terminating proxy in front, if any
    max_upload_mb: float = 5.0  # the largest schedule a nurse may upload
    keep_minutes: float = 30.0  # a batch's files are deleted this long after it finished
    session_hours: float = 12.0  # a login lasts one shift
    # Slow or idle clients must not take every connection (see web/server.py).
    connection_limit: int = 500  # open connections at most, from everyone
    connections_per_address: int = 40  # from one computer (the tls_proxy: no limit)
    header_seconds: float = 10.0  # a request's headers must arrive within this
    idle_seconds: float = 60.0  # a connection with no request for this long is closed

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
    raw = config.extra.get("serve", {})
    where = str(config.source) if config.source else "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [serve] must be a table of settings")
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("tls_cert", "tls_key", "password"):
            why = _NO_TLS_HERE if key != "password" else "use password_env"
            problems.append(f"serve.{key} is not supported ({why})")
        elif key not in _KEYS:
            problems.append(f"serve.{key} is not a known setting")
        elif key == "password_env":
            if not isinstance(value, str) or not _ENV_NAME.match(value):
                problems.append("serve.password_env must be the name of an environment variable")
            else:
                values[key] = value
        elif key == "tls_proxy":
            try:
                values[key] = str(ipaddress.ip_address(str(value)))
            except ValueError:
                problems.append(f"serve.tls_proxy {value!r} is not an IP address (the proxy's)")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append(f"serve.{key} must be a positive number")
        elif key in _WHOLE_NUMBERS:
            if not isinstance(value, int):
                problems.append(f"serve.{key} must be a whole number")
            else:
                values[key] = value
        else:
            values[key] = float(value)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return ServeSettings(**values)


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
