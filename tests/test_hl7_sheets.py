"""The ready folder ``discharge listen`` keeps (``discharge.hl7.sheets.ReadyFolder``), in this
process: what the subprocess tests in test_hl7_listen.py cannot time (two bookings in flight
at once) or count (the manifest's writes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from discharge.config import Config, parse_config
from discharge.hl7.settings import load_hl7_settings
from discharge.hl7.sheets import ReadyFolder
from tests.test_hl7_listen import siu

CONFIG = parse_config({"hl7": {"patient_id_type": "MR", "procedures": {"HSG": "hsg"}}})


def ready_folder(out: Path, config: Config = CONFIG, **kw: object) -> ReadyFolder:
    return ReadyFolder(config, load_hl7_settings(config), out, **kw)  # type: ignore[arg-type]


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[ReadyFolder]:
    made = ready_folder(tmp_path / "out")
    yield made
    made.close()


def test_bookings_in_flight_at_once_each_get_a_row_of_their_own(folder: ReadyFolder) -> None:
    """With --jobs, a booking is rendered between ``begin`` and ``finish``, while the next
    one begins: its row is taken from the start."""
    first = folder.begin(siu("S12", "R-1", appointment="R1", mrn="RX-R1").encode())
    second = folder.begin(siu("S12", "R-2", appointment="R2", mrn="RX-R2").encode())
    assert first.task is not None and second.task is not None
    assert (first.task.row, second.task.row) == (1, 2)
