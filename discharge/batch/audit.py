"""The batch's audit writer: each made row recorded, many rows per transaction, in the parent.

A row reaches the manifest (and counts as made) once its audit record is committed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import replace
from pathlib import Path

from discharge.audit import AuditError, AuditLog, AuditRecord
from discharge.batch.manifest import ERROR, OK, ManifestRow


class BatchAudit:
    """Records a batch's made rows as their outcomes arrive, many per transaction.

    ``entries`` passes the manifest entries through in order, holding each back until its
    audit record is committed: a row is reported ``ok`` only once it is recorded. If a commit
    fails, the held rows' PDFs are removed, the rows are passed on as errors (so a rerun makes
    them again) and AuditError is raised.
    """

    def __init__(
        self,
        log: AuditLog,
        schedule: Path,
        out_dir: Path,
        facts: MutableMapping[int, AuditRecord],
        in_flight: MutableMapping[int, str] | None = None,
        *,
        rows_per_commit: int = 64,
        seconds_per_commit: float = 0.5,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self.log = log
        # Run before each commit: the batch runner flushes the rows' PDFs to disk there, so a
        # recorded PDF is always on disk (many files flushed at once cost less than one each).
        self.before_commit = before_commit
        self.schedule = str(schedule.resolve())
        self.out_dir = out_dir
        self.facts = facts  # row -> the record a worker described (filled by the runner)
        # row -> PDF file, for rows being made: a row leaves it once its record is committed,
        # and the runner removes the files of the rows still in it when the run stops early.
        self.in_flight = {} if in_flight is None else in_flight
        self.rows_per_commit = rows_per_commit
        self.seconds_per_commit = seconds_per_commit

    def entries(self, outcomes: Iterable[ManifestRow]) -> Iterator[ManifestRow]:
        # (entry, its record not yet committed, or None); _commit empties the list as it goes,
        # so an interruption at any point neither records a row twice nor passes it on twice.
        held: list[tuple[ManifestRow, AuditRecord | None]] = []
        made = 0
        deadline = time.monotonic() + self.seconds_per_commit
        try:
            for entry in outcomes:
                record = self._record(entry)
                held.append((entry, record))
                made += record is not None
                if made >= self.rows_per_commit or time.monotonic() >= deadline:
                    yield from self._commit(held)
                    made = 0
                    deadline = time.monotonic() + self.seconds_per_commit
        except GeneratorExit:  # the run stopped: these rows are in neither log nor manifest
            self._remove(held)
            raise
        except BaseException:  # e.g. Ctrl-C: what is done is recorded, then the run stops
            yield from self._commit(held)
            raise
        yield from self._commit(held)

    def _record(self, entry: ManifestRow) -> AuditRecord | None:
        facts = self.facts.pop(entry.row, None)
        if facts is None or not self.log.enabled or entry.status != OK:
            return None
        return replace(facts, channel="batch", batch_file=self.schedule, batch_row=entry.row)

    def _commit(self, held: list[tuple[ManifestRow, AuditRecord | None]]) -> Iterator[ManifestRow]:
        failure: AuditError | None = None
        if self.before_commit is not None and held:
            self.before_commit()
        try:
            self.log.record_many(r for _, r in held if r is not None)
        except AuditError as exc:
            failure = exc
            self._remove(held)
            for entry, record in held:
                if record is not None:
                    entry.status, entry.sha256 = ERROR, ""
                    entry.error = f"not recorded: {exc}"
        held[:] = [(entry, None) for entry, _ in held]
        for entry, _ in held:
            self.in_flight.pop(entry.row, None)
        while held:
            yield held.pop(0)[0]
        if failure is not None:
            raise failure

    def _remove(self, held: list[tuple[ManifestRow, AuditRecord | None]]) -> None:
        for entry, record in held:
            if record is not None:
                with contextlib.suppress(OSError):
                    (self.out_dir / entry.file).unlink()
