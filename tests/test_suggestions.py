"""A "did you mean" is offered only for a typing slip, never for another procedure's name.

Following a suggestion prints that procedure's instructions, so a wrong one is worse than none.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from discharge.guidance.loading import typo_of
from tests.helpers import run_discharge

BUNDLED = ["hsg", "miscarriage"]
# Made-up clinic template ids, with real procedures' names one or two letters apart.
CLINIC = ["colposcopy", "colostomy", "egg-collection", "hysterectomy", "ivf-transfer", "lletz",
          "ureteroscopy", *BUNDLED]  # fmt: skip


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("hgs", "hsg"), ("hsgg", "hsg"), ("hs", "hsg"), ("miscariage", "miscarriage"),
     ("miscarige", "miscarriage"), ("mscarriage", "miscarriage"), ("colposcpy", "colposcopy"),
     ("colposcopi", "colposcopy"), ("hysterectomi", "hysterectomy"), ("letz", "lletz"),
     ("ivf-tranfser", "ivf-transfer"), ("egg-colection", "egg-collection")],
)  # fmt: skip
def test_a_typing_slip_gets_its_procedure(typed: str, meant: str) -> None:
    assert typo_of(typed, CLINIC) == meant
    if meant in BUNDLED:
        assert typo_of(typed, BUNDLED) == meant


@pytest.mark.parametrize(
    "typed",
    ["hysteroscopy", "colonoscopy", "colectomy", "ureterostomy", "hysterscopy", "msg", "hxx",
     "abc", "h", "", "laparoscopy", "myomectomy", "gsh"],
)  # fmt: skip
def test_another_procedures_name_gets_no_suggestion(typed: str) -> None:
    assert typo_of(typed, CLINIC) is None
    assert typo_of(typed, BUNDLED) is None


def test_two_equally_near_ids_get_no_suggestion() -> None:
    assert typo_of("lletx", ["lletz", "llety"]) is None


def test_generate_suggests_nothing_for_hysteroscopy(tmp_path: Path) -> None:
    args = ["generate", "--date", "2026-12-07", "--patient", "Ada", "-o", tmp_path / "x.pdf"]
    wrong = run_discharge(*args, "--procedure", "hysteroscopy")
    assert wrong.code == 2
    assert "unknown procedure: expected one of: hsg, miscarriage" in wrong.stderr
    assert "did you mean" not in wrong.stderr
    # and with a clinic's own templates beside the bundled ones
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(Path(__file__).parents[1] / "templates" / "hsg.toml", own / "colposcopy.toml")
    config = tmp_path / "clinic.toml"
    config.write_text(
        f'[clinic]\nname = "T"\nphone = "1"\nemergency_number = "999"\ntemplates_dir = "{own}"\n'
    )
    wrong = run_discharge(*args, "--procedure", "hysteroscopy", "--config", config)
    assert wrong.code == 2 and "did you mean" not in wrong.stderr, wrong.stderr
    slip = run_discharge(*args, "--procedure", "colposcpy", "--config", config)
    assert slip.code == 2 and "did you mean 'colposcopy'?" in slip.stderr, slip.stderr
    assert not (tmp_path / "x.pdf").exists()
