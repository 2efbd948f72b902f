"""`discharge serve`: the nurses' web form, behind waitress. Options and reporting only."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from discharge.errors import DischargeError, OutputError
from discharge.options import config_option, warn_drafts, warn_if_demo

THREADS = 8


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this computer needs [serve] protection "
                   "in the clinic settings (a login and a TLS proxy).")  # fmt: skip
@click.option("--port", default=8350, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=0), metavar="N",
              help="Processes drawing PDFs. Default: the number of CPU cores; 0 draws them in "
                   "the server process, one at a time.")  # fmt: skip
@config_option
def serve(host: str, port: int, workers: int | None, config_path: Path | None) -> None:
    """Serve the web form: one patient's PDF, or a day's schedule, from a browser.

    Stop it with Ctrl-C. Exit status: 0 stopped, 2 bad settings or the address cannot be used.
    """
    from waitress.server import create_server

    from discharge.config import load_config
    from discharge.guidance.loading import available_procedures, load_procedure
    from discharge.web import create_app
    from discharge.web.jobs import remove_leftovers
    from discharge.web.rendering import Renderer
    from discharge.web.server import connection_limits, guard_connections
    from discharge.web.settings import ACCOUNTS, check_bind, is_loopback, load_serve_settings

    processes = (os.cpu_count() or 1) if workers is None else workers
    config = load_config(config_path)
    settings = load_serve_settings(config)
    check_bind(host, settings)  # before anything listens
    remove_leftovers()  # uploads and PDFs of a server that was killed (kill -9) before it could
    overrides = {}
    if is_loopback(host) and settings.tls_proxy is None:
        # A page on another site that re-points its own name at 127.0.0.1 (DNS rebinding)
        # would look same-origin to the browser: only this computer's own names are answered.
        # (Behind a TLS proxy the proxy answers only its own site's names, which it forwards.)
        overrides["TRUSTED_HOSTS"] = sorted({"127.0.0.1", "localhost", "::1", host.strip("[]")})
    app = create_app(config, settings, password=settings.read_password(), overrides=overrides)
    for procedure_id in available_procedures(config.templates_dir):
        try:
            load_procedure(procedure_id, config.templates_dir)
        except DischargeError as exc:  # the form leaves it out; say why, once, here
            click.echo(f"warning: {exc} (not offered in the form)", err=True)
    warn_drafts(config)
    if settings.way == ACCOUNTS and not app.extensions["discharge.accounts"].users():
        click.echo(
            'warning: sign_in = "accounts" and there are no users yet: no one can sign in '
            "(add one: discharge users add NAME)",
            err=True,
        )
    # The proxy's forwarded headers are read by the app itself (web/__init__.py), which keeps
    # the address each connection came from: the user header is trusted from the proxy only.
    try:
        server: Any = create_server(
            app,
            host=host.strip("[]"),
            port=port,
            threads=THREADS,
            ident="discharge",
            # The upload limit, enforced by the server too, before the body is read.
            max_request_body_size=app.config["MAX_CONTENT_LENGTH"] + 64 * 1024,
            **connection_limits(settings),
            # Behind a TLS proxy the app reads its X-Forwarded-* headers itself, trusted from
            # the proxy's address only (web/__init__.py): waitress must pass them on.
            clear_untrusted_proxy_headers=settings.tls_proxy is None,
        )
        guard_connections(server, settings)
    except OSError as exc:
        raise OutputError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    # "Task queue depth is N": all threads busy for a moment, normal when nurses queue for PDFs.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    # The address is taken first (so "in use" is reported at once), then the renderer's worker
    # processes start and warm up; a request arriving meanwhile waits in the listen queue.
    renderer = app.extensions["discharge.renderer"] = Renderer(config, processes=processes)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, stop)
    try:
        renderer.start()
        click.echo(f"Serving on http://{shown}:{server.effective_port}/")
        warn_if_demo(config)
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, before)
        server.close()
        renderer.close()
        app.extensions["discharge.jobs"].close()
    click.echo("Stopped.")
    sys.exit(0)
