"""A day's schedule into PDFs, as plain functions a Python caller (or the web form) can use.

``schedule`` reads and validates the CSV, ``run`` renders the rows in worker processes and
keeps the output folder consistent, ``manifest`` records every row's outcome, and ``combine``
makes the one print-ready file.
"""

from __future__ import annotations

from discharge.batch.combine import check_combined_path, combine_pdfs, made_files
from discharge.batch.manifest import (
    EMAIL_FIELDS,
    ERROR,
    FAILED,
    MANIFEST_FIELDS,
    MANIFEST_NAME,
    NONE,
    OK,
    SENT,
    SKIPPED,
    UNKNOWN,
    EmailColumns,
    ManifestRow,
    ManifestWriter,
    neutralise,
    read_columns,
    read_manifest,
    write_manifest,
)
from discharge.batch.run import (
    BatchReporter,
    BatchSummary,
    CheckSummary,
    QuietReporter,
    check_schedule,
    folder_salt,
    locked,
    output_name,
    record_key,
    remove_partial_files,
    run_batch,
)
from discharge.batch.schedule import (
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    DateOrders,
    RowError,
    Schedule,
    ScheduleRecord,
    ScheduleRow,
    date_order_note,
    normalise_column,
    open_schedule,
    parse_row,
    read_date,
    read_rows,
)

__all__ = [
    "EMAIL_FIELDS", "ERROR", "FAILED", "KNOWN_COLUMNS", "MANIFEST_FIELDS", "MANIFEST_NAME",
    "NONE", "OK", "REQUIRED_COLUMNS", "SENT", "SKIPPED", "UNKNOWN", "folder_salt", "record_key",
    "BatchReporter", "BatchSummary",
    "CheckSummary", "check_combined_path", "EmailColumns", "ManifestRow", "ManifestWriter",
    "QuietReporter", "RowError", "read_columns", "write_manifest",
    "Schedule", "ScheduleRecord",
    "ScheduleRow", "check_schedule", "combine_pdfs", "locked", "neutralise", "normalise_column",
    "made_files", "DateOrders", "date_order_note",
    "open_schedule", "output_name", "parse_row", "read_date", "read_manifest", "read_rows",
    "remove_partial_files", "run_batch",
]  # fmt: skip
