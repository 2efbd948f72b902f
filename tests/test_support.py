"""Support and further reading: the clinic's resources, each with a QR code a phone can open."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from discharge.config import DEMO_RESOURCES, load_config, parse_config
from discharge.document import build_document
from discharge.errors import ConfigError
from discharge.request import parse_request
from tests.helpers import pdf_text, run_discharge

CLINIC = '[clinic]\nname = "Northgate"\nphone = "0113 496 0000"\nemergency_number = "999"\n'
RESOURCES = """
[[resources]]
name = "Northgate Pregnancy Loss Group"
phone = "0113 496 0777"
url = "https://northgate.example/loss-support"
procedures = ["miscarriage"]

[[resources]]
name = "Northgate patient videos"
url = "https://northgate.example/videos?topic=aftercare&lang=en"
"""


def _doc(procedure: str, config_text: str | None = None, tmp_path: Path | None = None):
    config = load_config()
    if config_text is not None:
        assert tmp_path is not None
        path = tmp_path / "clinic.toml"
        path.write_text(config_text, encoding="utf-8")
        config = load_config(path)
    request = parse_request(procedure=procedure, date="2026-11-21", patient="Ann Alpha")
    return build_document(request, config)


def test_resources_are_chosen_for_the_procedure(tmp_path: Path) -> None:
    misc = _doc("miscarriage", CLINIC + RESOURCES, tmp_path)
    assert [item.name for item in misc.support] == [
        "Northgate Pregnancy Loss Group", "Northgate patient videos",
    ]  # fmt: skip
    hsg = _doc("hsg", CLINIC + RESOURCES, tmp_path)
    assert [item.name for item in hsg.support] == ["Northgate patient videos"]


def test_a_clinic_file_never_prints_the_demo_resources(tmp_path: Path) -> None:
    assert _doc("miscarriage", CLINIC, tmp_path).support == ()
    demo = _doc("miscarriage")  # no settings: the demo clinic, fictional through and through
    assert [item.url for item in demo.support] == [
        r.url for r in DEMO_RESOURCES if "miscarriage" in r.procedures
    ]
    assert all("fictional" in item.name for item in demo.support)


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ('name = "X"\nurl = "http://plain.example"', "https://"),
        ('name = "X"\nurl = "https://a.example/x y"', "https://"),
        ('url = "https://a.example"', "name: is required"),
        ('name = "X"', "a phone number, a url, or both"),
        ('name = "X"\nphone = "1"\nprocedures = "hsg"', "list of procedure ids"),
        ('name = "X"\nphone = "1"\ncolour = "red"', "colour: is not a known setting"),
        ('name = "X"\nphone = "1"\nurl_es = "http://x.example"', "url_es: must be one https://"),
        ('name = "X"\nphone = 1', "phone: must be text in quotes"),
        ('name = "X"\nphone = "1"\nurl_de = 3', "url_de: must be one https://"),
        ('name = "X"\nphone = "1"\nurl_spanish = "https://a"', "url_LANG"),
    ],
)
def test_bad_resources_are_named(resource: str, message: str) -> None:
    import tomllib

    with pytest.raises(ConfigError, match=message):
        parse_config(tomllib.loads(CLINIC + "[[resources]]\n" + resource))


def test_every_qr_code_opens_its_page(tmp_path: Path) -> None:
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg is missing: apt-get install zbar-tools (see README)"
    config = tmp_path / "clinic.toml"
    config.write_text(CLINIC + RESOURCES, encoding="utf-8")
    out = tmp_path / "misc.pdf"
    result = run_discharge("generate", "--procedure", "miscarriage", "--date", "2026-11-21",
                           "--patient", "Ann Alpha", "--config", config, "-o", out)  # fmt: skip
    assert result.code == 0, result.stderr
    text = pdf_text(out)
    assert "Support and further reading" in text and "0113 496 0777" in text
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(out), str(tmp_path / "page")],
                   check=True)  # fmt: skip
    decoded = subprocess.run(
        [zbarimg, "-q", "--raw", *sorted(map(str, tmp_path.glob("page-*.png")))],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert sorted(decoded) == [
        "https://northgate.example/loss-support",
        "https://northgate.example/videos?topic=aftercare&lang=en",
    ]


def test_every_problem_of_every_resource_is_named_at_once(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    config.write_text(CLINIC + """
[[resources]]
name = " "
url = "http://a.example"
language = "English"

[[resources]]
name = "Fine"
phone = "1"
url_es = "https://es.example"
variants = [" Fertility "]

[[resources]]
name = "No way to reach it"
""", encoding="utf-8")  # fmt: skip
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", "Ann Alpha", "--config", config, "-o", tmp_path / "x.pdf")  # fmt: skip
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(f"{config}: ", 1)[1] for line in lines] == [
        "[[resources]] #1 name: is required (the organisation or page, in words)",
        "[[resources]] #1 url: must be one https:// address (printed as a QR code)",
        "[[resources]] #1 language: must be a language code such as en or es",
        "[[resources]] #3 give a phone number, a url, or both",
    ]
    assert not (tmp_path / "x.pdf").exists()
    config.write_text(CLINIC + """
[[resources]]
name = " Fine "
phone = "1"
url_es = " https://es.example "
variants = [" Fertility "]
""", encoding="utf-8")  # fmt: skip
    (fine,) = load_config(config).clinic.resources
    assert fine.name == "Fine" and fine.urls == (("es", "https://es.example"),)
    assert fine.variants == ("fertility",)


def test_resources_listed_before_the_clinic_section_are_the_clinics_own() -> None:
    """TOML allows [[resources]] above [clinic]: the clinic's own list still replaces the
    demo clinic's fictional one."""
    import tomllib

    config = parse_config(tomllib.loads(RESOURCES + "\n" + CLINIC))
    assert [r.name for r in config.clinic.resources] == [
        "Northgate Pregnancy Loss Group", "Northgate patient videos",
    ]  # fmt: skip
