"""What one process reuses from document to document (parsed and broken paragraphs, drawn
paragraphs, font subsets, their width tables and character maps, deflated fonts, QR codes,
rendered template texts) never changes a document: each PDF is byte for byte the one a new
`discharge generate` process makes, whatever was drawn before it and in whatever order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_discharge

# Varied on purpose: ASCII and non-ASCII names (fonts are numbered and subset per document),
# a name in the fallback font, both procedures and their variants, Spanish, large print, US
# paper, notes with bullets and of several pages.
REQUESTS = [
    ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30",
     "--patient", "Ann Smith", "--mrn", "RX-1"],
    ["--procedure", "miscarriage", "--variant", "medical", "--date", "2026-03-02",
     "--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-2",
     "--notes", "- Rest today.\n- Call if the bleeding gets heavier.\nReview in 6 weeks."],
    ["--procedure", "hsg", "--variant", "sterilisation-check", "--date", "2026-11-22",
     "--patient", "Ёлка ✓ O'Neil", "--paper", "letter", "--notes", "Tubes blocked.\n" * 120],
    ["--procedure", "miscarriage", "--date", "2026-11-21", "--language", "es",
     "--patient", "Lucía García", "--mrn", "RX-4", "--large-print"],
    ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30",
     "--patient", "Ann Smith", "--mrn", "RX-1", "--large-print"],
]  # fmt: skip


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Each document made by a new process (its own first document)."""
    folder = tmp_path_factory.mktemp("cold")
    made = []
    for i, args in enumerate(REQUESTS):
        out = folder / f"{i}.pdf"
        result = run_discharge("generate", *args, "--output", out)
        assert result.code == 0, result.stderr
        made.append(out.read_bytes())
    return made


@pytest.mark.parametrize("order", ["in turn", "reversed"])
def test_a_document_is_the_same_after_others_in_the_same_process(
    cold: list[bytes], tmp_path: Path, order: str
) -> None:
    from discharge.commands.generate import generate

    indices = list(range(len(REQUESTS)))
    if order == "reversed":
        indices.reverse()
    # Twice over, in one process, as a batch worker or the web server does.
    for round_ in range(2):
        for i in indices:
            out = tmp_path / f"{round_}-{i}.pdf"
            generate.main([*REQUESTS[i], "--output", str(out)], standalone_mode=False)
            assert out.read_bytes() == cold[i], f"document {i}, round {round_ + 1}"
