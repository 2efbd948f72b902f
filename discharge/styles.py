"""Every size, colour and spacing of the printed page, in one place."""

from __future__ import annotations

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm

from discharge.fonts import BODY, BOLD

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
MARGIN_BOTTOM = 20 * mm  # room for the footer
FOOTER_SIZE = 8.5  # the one text under 11 pt: a patient reads the page, not its footer

# Bullets in the embedded body font (reportlab's default is a non-embedded Helvetica).
_base = ParagraphStyle("base", fontName=BODY, bulletFontName=BODY, fontSize=11, leading=14.5,
                       textColor=INK)  # fmt: skip


def _style(name: str, **kw: object) -> ParagraphStyle:
    return ParagraphStyle(name, parent=_base, **kw)


CLINIC_NAME = _style("clinic", fontName=BOLD, fontSize=13, leading=16, textColor=ACCENT)
CLINIC_LINE = _style("clinic-line", fontSize=11, leading=14, textColor=MUTED)
CLINIC_CONTACT = _style(
    "clinic-contact", fontSize=11, leading=14, textColor=MUTED, alignment=TA_RIGHT
)
TITLE = _style("title", fontName=BOLD, fontSize=20, leading=25, spaceBefore=6, spaceAfter=1)
SUBTITLE = _style("subtitle", fontSize=12, leading=16, textColor=MUTED, spaceAfter=6)
LABEL = _style("label", fontSize=11, leading=14, textColor=MUTED)
VALUE = _style("value", fontName=BOLD, fontSize=11, leading=14)
BODY_TEXT = _style("body", spaceAfter=6)
BULLET = _style("bullet", leftIndent=14, bulletIndent=3, spaceAfter=2)
HEADING = _style("heading", fontName=BOLD, fontSize=14, leading=18, spaceBefore=10, spaceAfter=4,
                 textColor=ACCENT)  # fmt: skip
TABLE_HEAD = _style("table-head", fontName=BOLD, fontSize=11, leading=14, textColor=colors.white)
WHEN = _style("when", fontName=BOLD, fontSize=11, leading=14.5)
WHAT = _style("what", fontSize=11, leading=14.5)
HELP_HEADING = _style("help-heading", fontName=BOLD, fontSize=15, leading=19, textColor=ALERT)
HELP_URGENT = _style("help-urgent", fontName=BOLD, fontSize=12, leading=16, textColor=colors.white)
HELP_LEVEL = _style("help-level", fontName=BOLD, fontSize=12, leading=16, textColor=ALERT)
HELP_TEXT = _style("help-text", fontSize=11, leading=15)
HELP_BULLET = _style("help-bullet", leftIndent=14, bulletIndent=3)
HELP_WHO = _style("help-who", fontSize=11, leading=14, textColor=MUTED)
HELP_PHONE = _style("help-phone", fontName=BOLD, fontSize=13, leading=16)
NOTES = _style("notes", fontSize=11, leading=15, splitLongWords=1)
SMALL = _style("small", fontSize=11, leading=14, textColor=MUTED)
SIGN_LABEL = _style("sign-label", fontSize=11, leading=14, textColor=MUTED)
