"""Imported by multiprocessing's fork server as it starts (``rendering.Renderer`` names it as
a preload): the fork server then ends with ``discharge serve``, even if the server is killed
outright (``kill -9``), and each worker it forked ends with it (``_init_worker``).

Without it the fork server, whose parent is the server, outlives it, and keeps its workers.
"""

from __future__ import annotations

import sys

# Only in the fork server itself (``python -c "from multiprocessing.forkserver import
# main; ..."``), never in a process that imports this module for another reason.
if sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules:
    from discharge.batch.lifeline import die_with_parent

    die_with_parent()
