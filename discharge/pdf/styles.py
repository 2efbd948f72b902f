"""Every size, colour and spacing of the printed page, in one place.

Sizes come in two sets, built by one function for a scale: ``NORMAL`` and ``LARGE`` (large
print for low vision). The renderer picks the set from the Document; nothing here is changed
at run time. Each large style has its own name ("body-large"), so caches keyed by a style's
name never mix the two sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm

from discharge.pdf.fonts import BODY, BOLD

INK = colors.HexColor("#1a1a1a")
MUTED = colors.HexColor("#555555")
ACCENT = colors.HexColor("#0b5563")  # clinic teal: headings, rules
ACCENT_TINT = colors.HexColor("#e6f0f2")
ROW_TINT = colors.HexColor("#f5f7f8")
ALERT = colors.HexColor("#b3261e")
ALERT_TINT = colors.HexColor("#fdeeec")
RULE = colors.HexColor("#c8cfd2")

MARGIN_X = 18 * mm
MARGIN_TOP = 13 * mm

# Large print: body text at least 18 pt, the RNIB / APH large-print minimum. Everything a
# patient reads is at least that size; only the footer (page furniture) is smaller.
LARGE_PRINT_MIN = 18.0


# The records below are built, read and cached, never compared or printed: eq=False and
# repr=False spare every start the methods a dataclass would generate for that (about 5 ms
# of a cold `discharge generate` over the package).
@dataclass(frozen=True, eq=False, repr=False)
class Styles:
    """One complete set of sizes: paragraph styles, the footer, and table geometry."""

    scale: str  # "normal" or "large"
    clinic: ParagraphStyle
    clinic_line: ParagraphStyle
    clinic_contact: ParagraphStyle
    title: ParagraphStyle
    subtitle: ParagraphStyle
    label: ParagraphStyle
    value: ParagraphStyle
    body: ParagraphStyle
    bullet: ParagraphStyle
    heading: ParagraphStyle
    table_head: ParagraphStyle
    when: ParagraphStyle
    what: ParagraphStyle
    help_heading: ParagraphStyle
    help_urgent: ParagraphStyle
    help_level: ParagraphStyle
    help_text: ParagraphStyle
    help_bullet: ParagraphStyle
    help_who: ParagraphStyle
    help_phone: ParagraphStyle
    notes: ParagraphStyle
    small: ParagraphStyle
    sign_label: ParagraphStyle
    # Page furniture and geometry.
    header_side_by_side: bool  # the clinic's phone numbers beside its name, or under it
    timeline_kept_whole: bool  # move the whole timeline to the next page rather than split it
    margin_bottom: float  # room for the footer
    footer_size: float
    footer_y: float  # baseline of the footer's first line
    footer_line_gap: float  # from one footer line's baseline down to the next's
    footer_ids_own_line: bool  # date of birth and hospital number on a line of their own
    tick_box: float  # side of a teach-back tick box
    tick_column: float
    patient_pairs_per_row: int  # label/value pairs side by side in the patient block
    patient_label_width: float
    when_share: float  # of the timeline's width, for the "When" column
    signature_fields_per_row: int  # 4: both signatures on one row; 2: one signature a row
    signature_line_gap: float  # room to sign above each line


def build_styles(scale: str) -> Styles:
    """The style set for ``scale`` ("normal" or "large")."""
    if scale not in ("normal", "large"):
        raise ValueError(f"unknown style scale {scale!r}")
    large = scale == "large"
    suffix = "-large" if large else ""
    # Bullets in the embedded body font (reportlab's default is a non-embedded Helvetica).
    base = ParagraphStyle("base" + suffix, fontName=BODY, bulletFontName=BODY,
                          fontSize=18 if large else 11, leading=24 if large else 14.5,
                          textColor=INK)  # fmt: skip

    def style(name: str, normal: tuple[float, float], big: tuple[float, float],
              **kw: Any) -> ParagraphStyle:  # fmt: skip
        size, leading = big if large else normal
        if large:  # reportlab draws bullets at 10 pt unless told otherwise
            kw.setdefault("bulletFontSize", size)
        return ParagraphStyle(name + suffix, parent=base, fontSize=size, leading=leading, **kw)

    indent = {"leftIndent": 22, "bulletIndent": 4} if large else {"leftIndent": 14,
                                                                    "bulletIndent": 3}  # fmt: skip
    return Styles(
        scale=scale,
        clinic=style("clinic", (13, 16), (20, 25), fontName=BOLD, textColor=ACCENT),
        clinic_line=style("clinic-line", (11, 14), (18, 23), textColor=MUTED),
        clinic_contact=style(
            "clinic-contact", (11, 14), (18, 23), textColor=MUTED, alignment=TA_RIGHT
        ),  # fmt: skip
        title=style("title", (20, 25), (30, 36), fontName=BOLD, spaceBefore=6, spaceAfter=1),
        subtitle=style("subtitle", (12, 16), (20, 26), textColor=MUTED, spaceAfter=6),
        label=style("label", (11, 14), (18, 23), textColor=MUTED),
        value=style("value", (11, 14), (19, 24), fontName=BOLD),
        body=style("body", (11, 14.5), (18, 24), spaceAfter=6 if not large else 9),
        bullet=style("bullet", (11, 14.5), (18, 24), spaceAfter=2 if not large else 4, **indent),
        heading=style(
            "heading",
            (14, 18),
            (23, 28),
            fontName=BOLD,
            spaceBefore=10,
            spaceAfter=4,
            textColor=ACCENT,
        ),  # fmt: skip
        table_head=style(
            "table-head", (11, 14), (19, 24), fontName=BOLD, textColor=colors.white
        ),  # fmt: skip
        when=style("when", (11, 14.5), (18, 23), fontName=BOLD),
        what=style("what", (11, 14.5), (18, 23)),
        help_heading=style("help-heading", (15, 19), (24, 29), fontName=BOLD, textColor=ALERT),
        help_urgent=style(
            "help-urgent", (12, 16), (20, 25), fontName=BOLD, textColor=colors.white
        ),  # fmt: skip
        help_level=style("help-level", (12, 16), (20, 25), fontName=BOLD, textColor=ALERT),
        help_text=style("help-text", (11, 15), (18, 24)),
        help_bullet=style("help-bullet", (11, 14.5), (18, 24), **indent),
        help_who=style("help-who", (11, 14), (18, 23), textColor=MUTED),
        help_phone=style("help-phone", (13, 16), (22, 27), fontName=BOLD),
        notes=style("notes", (11, 15), (18, 24), splitLongWords=1),
        small=style("small", (11, 14), (18, 23), textColor=MUTED),
        sign_label=style("sign-label", (11, 14), (18, 23), textColor=MUTED),
        header_side_by_side=not large,
        timeline_kept_whole=not large,
        margin_bottom=(31 if large else 20) * mm,
        # The one text under 11 pt (18 pt in large print): a patient reads the page, not its
        # footer. But it carries the clinic's number: at least 9 pt, 16 pt in large print.
        footer_size=16 if large else 9,
        footer_y=(24 if large else 11) * mm,
        footer_line_gap=19 if large else 10.5,
        footer_ids_own_line=large,
        tick_box=18 if large else 11,
        tick_column=(12 if large else 9) * mm,
        patient_pairs_per_row=1 if large else 2,
        patient_label_width=(62 if large else 30) * mm,
        when_share=0.46 if large else 0.43,
        signature_fields_per_row=2 if large else 4,
        signature_line_gap=40 if large else 26,
    )


NORMAL = build_styles("normal")
LARGE = build_styles("large")


def styles_for(large_print: bool) -> Styles:
    return LARGE if large_print else NORMAL
