"""The installation's cache (discharge/cache.py) only ever saves time: the same PDF with it cold,
warm, damaged or switched off; a changed template is read again; a folder other users can write
is not used. And `discharge generate` imports only what it uses."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import CACHE_ENV, PATIENT, pdf_text, run_discharge

# ✓ is drawn with the fallback font: its fonts are cached too.
ARGS = ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30", *PATIENT,
        "--notes", "Tubes open.\nCall if any fever, Ёлка ✓."]  # fmt: skip


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty cache for this test (not the session's shared one)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def make(tmp_path: Path, name: str, *extra: str, env: dict[str, str] | None = None) -> bytes:
    out = tmp_path / f"{name}.pdf"
    result = run_discharge("generate", *ARGS, *extra, "--output", out, env=env)
    assert result.code == 0, result.stderr
    return out.read_bytes()


def entries(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.pickle"))}


def test_the_same_pdf_with_the_cache_cold_warm_and_off(cache: Path, tmp_path: Path) -> None:
    cold = make(tmp_path, "cold")
    kinds = {name.split("-")[0] for name in entries(cache)}
    assert kinds == {"font", "procedure", "locale", "qr"}
    assert len([n for n in entries(cache) if n.startswith("font-")]) == 4  # main + fallback
    warm = make(tmp_path, "warm")
    off = make(tmp_path, "off", env={CACHE_ENV: ""})
    assert cold == warm == off


def test_a_damaged_entry_is_rebuilt_never_used(cache: Path, tmp_path: Path) -> None:
    good_pdf = make(tmp_path, "good")
    good = entries(cache)
    for i, path in enumerate(sorted(cache.glob("*.pickle"))):
        data = path.read_bytes()
        damaged = [
            data[: len(data) // 2],  # cut short
            data[:-1] + bytes([data[-1] ^ 1]),  # one bit changed
            b"not a cache entry",
        ][i % 3]
        path.write_bytes(damaged)
    assert make(tmp_path, "again") == good_pdf
    rewritten = entries(cache)
    assert rewritten.keys() == good.keys()
    for data in rewritten.values():  # each rewritten whole: its checksum matches again
        head, digest, payload = data[:8], data[8:40], data[40:]
        assert head == b"dcache1\n" and hashlib.sha256(payload).digest() == digest


def test_a_changed_template_is_read_again(cache: Path, tmp_path: Path) -> None:
    folder = tmp_path / "my-templates"
    folder.mkdir()
    template = folder / "hsg.toml"
    bundled = Path(__file__).parent.parent / "templates" / "hsg.toml"
    shutil.copy(bundled, template)
    config = tmp_path / "clinic.toml"
    config.write_text(
        '[clinic]\nname = "Northgate Clinic"\nphone = "0113 496 0000"\nemergency_number = "999"\n'
        'templates_dir = "my-templates"\n',
        encoding="utf-8",
    )
    make(tmp_path, "before", "--config", str(config))
    text = template.read_text(encoding="utf-8")
    assert 'title = "' in text
    template.write_text(text.replace('title = "', 'title = "Northgate: ', 1), encoding="utf-8")
    # Same size and modification time would not fool it either: the key is the content.
    after = tmp_path / "after.pdf"
    result = run_discharge("generate", *ARGS, "--config", config, "--output", after)
    assert result.code == 0, result.stderr
    assert "Northgate: " in pdf_text(after)
    # A mistake made after the template was cached is still found.
    template.write_text(text.replace("{{ clinic.", "{{ clinic.nosuch_", 1), encoding="utf-8")
    broken = run_discharge("generate", *ARGS, "--config", config, "--output", tmp_path / "x.pdf")
    assert broken.code == 2
    assert "hsg.toml" in broken.stderr and "nosuch_" in broken.stderr
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_cache_folder_other_users_can_write_is_not_used(cache: Path, tmp_path: Path) -> None:
    first = make(tmp_path, "first")
    for path in cache.glob("*.pickle"):
        path.unlink()
    cache.chmod(0o777)
    assert make(tmp_path, "second") == first
    assert entries(cache) == {}  # neither read nor written


def test_no_usable_cache_folder_is_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    expected = make(tmp_path, "expected", env={CACHE_ENV: ""})
    assert make(tmp_path, "nowhere", env={CACHE_ENV: str(blocker / "cache")}) == expected


def test_generate_imports_only_what_it_uses(tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    run_discharge("generate", *ARGS, "--output", out)  # the cache warm, as after a first sheet
    result = run_discharge("generate", *ARGS, "--output", out, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.code == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    # And a template with a choice between variants ({% if variant == ... %}), its cache warm.
    args = ["--procedure", "miscarriage", "--variant", "surgical", "--date", "2026-11-21",
            "--patient", "Ann", "--output", tmp_path / "other.pdf"]  # fmt: skip
    run_discharge("generate", *args)
    other = run_discharge("generate", *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert other.code == 0, other.stderr
    assert "jinja2" not in {line.split("|")[-1].strip() for line in other.stderr.splitlines()}
    assert "discharge.pdf.render" in imported  # the listing is there
    for unused in ["PIL._imaging", "discharge.batch", "discharge.delivery", "discharge.web",
                   "discharge.commands.serve", "discharge.commands.batch", "flask", "smtplib",
                   "email.mime", "icalendar", "pypdf",
                   "reportlab.graphics.barcode",  # QR codes come from the cache
                   "socket", "jinja2"]:  # fmt: skip
        assert unused not in imported, unused
