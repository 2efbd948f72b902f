"""The settings schema: every section of the clinic's file checked when it is loaded, every
problem named at once, a line each, in file order (discharge/settings_schema.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import Result, run_discharge

CLINIC = '[clinic]\nname = "Northgate"\nphone = "0113 496 0000"\nemergency_number = "999"\n'
PATIENT = ["--procedure", "hsg", "--date", "2026-11-21", "--patient", "Mary Jones",
           "--dob", "1980-03-04", "--mrn", "RX-104233"]  # fmt: skip


def generate(tmp_path: Path, settings: str) -> tuple[Result, Path, list[str]]:
    """`discharge generate` with these settings: its result, the settings file, and each
    error line without the program's prefix."""
    config = tmp_path / "clinic.toml"
    config.write_text(settings, encoding="utf-8")
    result = run_discharge("generate", *PATIENT, "--config", config, "-o", tmp_path / "a.pdf")
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert all(line.startswith("discharge: error: ") for line in lines), result.stderr
    return result, config, [line.removeprefix("discharge: error: ") for line in lines]


def test_three_mistakes_in_three_sections_are_named_at_once_in_file_order(tmp_path: Path) -> None:
    result, config, lines = generate(tmp_path, (
        '[print]\nprinter = "Ward3"\ncopies = 50\n'
        + CLINIC + 'paper = "a5"\n'
        + '[smtp]\nsender = "aftercare@northgate.example"\nport = "587"\n'
    ))  # fmt: skip
    assert result.code == 2 and not (tmp_path / "a.pdf").exists()
    assert lines == [
        f"{config}: [print] copies: must be a whole number from 1 to 20",
        f"{config}: [clinic] paper: is 'a5', expected a4 or letter",
        f"{config}: [smtp] port: must be a whole number from 1 to 65535",
    ]


def test_a_number_out_of_range_and_a_value_of_the_wrong_type(tmp_path: Path) -> None:
    result, config, lines = generate(tmp_path, (
        CLINIC + "large_print = \"yes\"\nreview_interval_months = 121\n"
        + "[serve]\nkeep_minutes = -5\n[print]\ntimeout = 3601\n"
    ))  # fmt: skip
    assert result.code == 2
    assert lines == [
        f"{config}: [clinic] large_print: must be true or false (without quotes)",
        f"{config}: [clinic] review_interval_months: must be a whole number of months from 1 to 120",
        f"{config}: [serve] keep_minutes: must be a positive number",
        f"{config}: [print] timeout: must be more than 0 and at most 3600 seconds",
    ]


def test_an_unknown_key_names_the_keys_it_could_be(tmp_path: Path) -> None:
    result, config, lines = generate(tmp_path, CLINIC + "[serve]\nmax_upload = 5\n[sms]\nto = 1\n")
    assert result.code == 2
    assert lines[0] == (
        f"{config}: [serve] max_upload: is not a known setting; did you mean max_upload_mb? "
        "(expected one of: password_env, tls_proxy, max_upload_mb, keep_minutes, session_hours, "
        "session_idle_minutes, sign_in, user_header, connection_limit, connections_per_address, "
        "header_seconds, idle_seconds)"
    )
    assert lines[1].startswith(f"{config}: [sms] is not a known section (expected one of: clinic")
    assert len(lines) == 2


def test_a_missing_required_key_is_named(tmp_path: Path) -> None:
    result, config, lines = generate(
        tmp_path, '[clinic]\nname = "Northgate"\n[smtp]\nhost = "smtp.northgate.example"\n'
    )
    assert result.code == 2
    assert lines == [
        f"{config}: [clinic] phone: is required",
        f"{config}: [clinic] emergency_number: is required",
        f"{config}: [smtp] sender: is required: the From address, for example "
        'sender = "Riverside Clinic <aftercare@riverside.example>"',
    ]


def test_secrets_come_only_from_the_environment_and_are_never_repeated(tmp_path: Path) -> None:
    result, config, lines = generate(tmp_path, (
        CLINIC + '[smtp]\nsender = "a@northgate.example"\nusername = "clinic"\n'
        + 'password = "hunter2"\npassword_env = "hunter2"\n'
        + '[serve]\npassword_env = "hunter 3"\n'
    ))  # fmt: skip
    assert result.code == 2 and "hunter" not in result.stderr
    assert [line.split(": ")[1] for line in lines] == [
        "[smtp] password", "[smtp] password_env", "[serve] password_env",
    ]  # fmt: skip
    assert "put it in an environment variable" in lines[0]
    assert "the NAME of an environment variable, in capital letters" in lines[1]
    # Named right, the variable is read only when the password is needed: making a PDF works.
    result, _, _ = generate(tmp_path, (
        CLINIC + '[smtp]\nsender = "a@northgate.example"\nusername = "clinic"\n'
        + 'password_env = "DISCHARGE_TEST_UNSET_PASSWORD"\n'
        + '[serve]\npassword_env = "DISCHARGE_TEST_UNSET_LOGIN"\n'
    ))  # fmt: skip
    assert result.code == 0 and (tmp_path / "a.pdf").exists()


def test_a_file_with_every_section_right_makes_the_document(tmp_path: Path) -> None:
    result, _, lines = generate(tmp_path, (
        CLINIC + '[smtp]\nsender = "Northgate <a@northgate.example>"\nhost = "localhost"\n'
        + '[email]\nformats = "pdf,html"\n[audit]\nenabled = true\n'
        + '[serve]\nmax_upload_mb = 2\n[print]\nprinter = ["Ward3", "Ward4"]\n'
    ))  # fmt: skip
    assert result.code == 0, lines
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")


def test_checking_the_email_and_print_sections_does_not_load_email_or_printing() -> None:
    # A clinic that emails and prints has [smtp] and [print] in its file, and every command
    # checks them: that must not pay for the message, SMTP, CUPS or Jinja2 code. (Its own
    # [email] texts are templates, tried with sample values when the file is checked.)
    settings = '[smtp]\nhost = "mail.example"\nsender = "a@b.example"\n[print]\nprinter = "Desk"\n'
    heavy = ("jinja2", "discharge.delivery.smtp", "discharge.delivery.compose",
             "discharge.printing.jobs", "discharge.printing.cups")  # fmt: skip
    code = (
        "import sys, tomllib\n"
        "from discharge.config import parse_config\n"
        f"parse_config(tomllib.loads({settings!r}))\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loading_the_serve_section_does_not_load_the_web_server() -> None:
    # `generate` with a settings file that has [serve] must not pay for importing Flask.
    code = "import sys, discharge.web.settings; assert 'flask' not in sys.modules, 'flask'"
    subprocess.run([sys.executable, "-c", code], check=True)
