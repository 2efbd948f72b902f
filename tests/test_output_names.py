"""`discharge generate` never puts one patient's PDF in place of another's by default."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import pdf_text, run_discharge

DAY = ["--procedure", "hsg", "--date", "2026-12-07"]


def generate(cwd: Path, *args: str | Path) -> tuple[int, str, str]:
    result = run_discharge("generate", *DAY, *args, cwd=cwd)
    return result.code, result.stdout, result.stderr


def test_two_patients_on_the_same_day_get_two_files(tmp_path: Path) -> None:
    assert generate(tmp_path, "--patient", "Ann Alpha", "--mrn", "RX-1")[0] == 0
    assert generate(tmp_path, "--patient", "Bea Beta", "--mrn", "RX-2")[0] == 0
    # without a hospital number, the date of birth tells them apart
    assert generate(tmp_path, "--patient", "Cy Gamma", "--dob", "1990-02-01")[0] == 0
    assert generate(tmp_path, "--patient", "Di Delta", "--dob", "1985-12-31")[0] == 0
    files = sorted(p.name for p in tmp_path.glob("*.pdf"))
    assert files == [
        "discharge-hsg-2026-12-07-born-1985-12-31.pdf",
        "discharge-hsg-2026-12-07-born-1990-02-01.pdf",
        "discharge-hsg-2026-12-07-rx-1.pdf",
        "discharge-hsg-2026-12-07-rx-2.pdf",
    ]
    assert "Ann Alpha" in pdf_text(tmp_path / files[2])
    assert "Bea Beta" in pdf_text(tmp_path / files[3])
    assert "Di Delta" in pdf_text(tmp_path / files[0])


def test_the_name_is_safe_whatever_the_hospital_number_holds(tmp_path: Path) -> None:
    code, out, err = generate(tmp_path, "--patient", "Ann Alpha", "--mrn", "../Ré 7/B:2")
    assert code == 0, err
    (made,) = tmp_path.glob("*.pdf")
    assert made.name == "discharge-hsg-2026-12-07-re-7-b-2.pdf"
    assert "Ann" not in made.name and f"Wrote {made.name}" in out


def test_the_same_patient_regenerating_replaces_the_file_silently(tmp_path: Path) -> None:
    patient = ["--patient", "Ann Alpha", "--mrn", "RX-1"]
    assert generate(tmp_path, *patient, "--notes", "First version.")[0] == 0
    code, _, err = generate(tmp_path, *patient, "--notes", "Corrected version.")
    assert code == 0 and "error" not in err
    text = pdf_text(tmp_path / "discharge-hsg-2026-12-07-rx-1.pdf")
    assert "Corrected version." in text and "First version." not in text


def test_another_patients_file_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "today.pdf"
    assert generate(tmp_path, "--patient", "Ann Alpha", "--mrn", "RX-1", "-o", out)[0] == 0
    before = out.read_bytes()

    code, stdout, err = generate(tmp_path, "--patient", "Bea Beta", "--mrn", "RX-2", "-o", out)

    assert code == 2 and stdout == ""
    assert err.strip() == (
        f"discharge: error: output {out} is another patient's discharge PDF: it was not "
        "replaced (give another file name with -o, or add --force to replace it)"
    )
    assert "Bea" not in err and "RX-2" not in err
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.glob(".*part")] == [] and [
        p.name for p in tmp_path.glob("*.pdf")
    ] == ["today.pdf"]  # no temporary file

    code, _, err = generate(
        tmp_path, "--patient", "Bea Beta", "--mrn", "RX-2", "-o", out, "--force"
    )
    assert code == 0, err
    assert "Bea Beta" in pdf_text(out)


def test_patients_without_number_or_birth_date_are_not_mixed_up(tmp_path: Path) -> None:
    # Both get the same default name: the second is refused, not swapped in.
    assert generate(tmp_path, "--patient", "Ann Alpha")[0] == 0
    code, _, err = generate(tmp_path, "--patient", "Bea Beta")
    assert code == 2 and "another patient's discharge PDF" in err
    assert "Ann Alpha" in pdf_text(tmp_path / "discharge-hsg-2026-12-07.pdf")


def test_a_file_that_is_not_a_discharge_pdf_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "report.pdf"
    out.write_bytes(b"%PDF-1.4 someone else's report")
    code, _, err = generate(tmp_path, "--patient", "Ann Alpha", "-o", out)
    assert code == 2 and "is a file that is not a discharge PDF for this patient" in err
    assert out.read_bytes() == b"%PDF-1.4 someone else's report"


def test_email_keeps_its_copy_only_in_place_of_this_patients_pdf(tmp_path: Path) -> None:
    # `discharge email --output` keeps the clinic's copy: the same guard as generate's.
    out = tmp_path / "copy.pdf"
    assert generate(tmp_path, "--patient", "Ann Alpha", "--mrn", "RX-1", "-o", out)[0] == 0
    before = out.read_bytes()
    eml = tmp_path / "message.eml"

    def email(*extra: str | Path) -> tuple[int, str]:
        result = run_discharge("email", *DAY, "--patient", "Bea Beta", "--mrn", "RX-2",
                               "--to", "bea@example.org", "--eml", eml, "-o", out, *extra,
                               cwd=tmp_path)  # fmt: skip
        return result.code, result.stderr

    code, err = email()
    assert code == 2 and "is another patient's discharge PDF" in err, err
    assert out.read_bytes() == before and not eml.exists()  # nothing made, nothing written

    code, err = email("--force")
    assert code == 0, err
    assert "Bea Beta" in pdf_text(out) and eml.exists()
