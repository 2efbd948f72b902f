"""A rerun's print file and summary hold only what the rerun made."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import pdf_text, run_discharge


def _schedule(path: Path, bea_date: str) -> Path:
    lines = ["patient_name,procedure,date,mrn", "Ann Alpha,hsg,2026-11-21,RX-1",
             f"Bea Beta,hsg,{bea_date},RX-2", "Cy Gamma,miscarriage,2026-11-21,RX-3"]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_reruns_combined_file_holds_only_the_rows_it_made(tmp_path: Path) -> None:
    out, combined = tmp_path / "out", tmp_path / "print.pdf"
    first = run_discharge("batch", _schedule(tmp_path / "s.csv", "2026-02-30"), "--out-dir", out,
                          "--combined", combined)  # fmt: skip
    assert first.code == 1, first.stderr
    text = pdf_text(combined)
    assert "Ann Alpha" in text and "Cy Gamma" in text and "Bea Beta" not in text
    made_first = [line for line in first.stdout.splitlines() if line.startswith("made ")]
    assert len(made_first) == 2

    # Bea's date corrected: the rerun makes her PDF only, and prints only hers.
    rerun = run_discharge("batch", _schedule(tmp_path / "s.csv", "2026-11-21"), "--out-dir", out,
                          "--combined", combined)  # fmt: skip
    assert rerun.code == 0, rerun.stderr
    assert "1 ok / 0 error / 2 skipped" in rerun.stdout
    text = pdf_text(combined)
    assert "Bea Beta" in text
    assert "Ann Alpha" not in text and "Cy Gamma" not in text
    made = [line.removeprefix("made ") for line in rerun.stdout.splitlines()
            if line.startswith("made ")]  # fmt: skip
    assert len(made) == 1 and "Bea Beta" in pdf_text(Path(made[0]))
    assert "rx-2" in Path(made[0]).name

    # Nothing new: nothing to print, and the way to print every row is named.
    again = run_discharge("batch", tmp_path / "s.csv", "--out-dir", out, "--combined", combined)
    assert again.code == 0 and "made " not in again.stdout
    assert "No new PDFs to combine (add --combined-all" in again.stdout
    every = run_discharge("batch", tmp_path / "s.csv", "--out-dir", out, "--combined", combined,
                          "--combined-all")  # fmt: skip
    assert every.code == 0
    text = pdf_text(combined)
    assert all(name in text for name in ("Ann Alpha", "Bea Beta", "Cy Gamma"))


def test_combined_all_goes_with_combined(tmp_path: Path) -> None:
    run = run_discharge("batch", _schedule(tmp_path / "s.csv", "2026-11-21"), "--out-dir",
                        tmp_path / "out", "--combined-all")  # fmt: skip
    assert run.code == 2 and "--combined-all goes with --combined" in run.stderr
    assert not (tmp_path / "out").exists()
