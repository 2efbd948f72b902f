"""Making PDFs for the form from many waitress threads at once.

The renderer keeps process-wide caches (parsed paragraphs, broken lines, registered fonts) in
plain dicts that are not safe to change from two threads at once. Rendering is CPU-bound and
holds the GIL anyway, so a lock costs almost nothing here: requests queue for a few
milliseconds each (see benchmarks/bench_serve.py), and each gets its own patient's PDF.
"""

from __future__ import annotations

import threading

from discharge.config import Config
from discharge.document import DischargeRequest, parse_request
from discharge.generate import make_pdf


class Renderer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()

    def render(self, request: DischargeRequest) -> bytes:
        with self._lock:
            return make_pdf(request, self.config)[1]

    def warm_up(self) -> None:
        """Load fonts, templates and reportlab now, not on the first nurse's request."""
        from discharge.procedures import available_procedures

        for procedure in available_procedures(self.config.templates_dir):
            request = parse_request(procedure=procedure, date="2026-01-05", patient="Warm Up")
            self.render(request)
