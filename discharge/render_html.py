"""Lay a Document out as one accessible, self-contained web page (HTML5). Only layout lives
here: every word comes from the model, as in the PDF.

Semantic elements first (headings, a table with header cells for the timeline, lists for the
signs, the help box a labelled section), ARIA only where HTML has none. One file: the style is
inline, QR codes are inline SVG, a logo is a data: URL; no script and no outside request (the
page's own Content-Security-Policy forbids both). Every string from the model is escaped here:
patient text is text, never markup.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html import escape
from pathlib import Path

from discharge.document import Block, Contact, Document, HelpLevel
from discharge.pdf.qr import qr_svg_path

_STYLE = """
:root{--ink:#1a1a1a;--muted:#555;--accent:#0b5563;--accent-tint:#e6f0f2;--row:#f5f7f8;
--alert:#b3261e;--alert-tint:#fdeeec;--rule:#c8cfd2}
*{box-sizing:border-box}
html{font-size:100%;-webkit-text-size-adjust:100%;text-size-adjust:100%}
html.large{font-size:150%}
body{margin:0 auto;max-width:46rem;padding:1rem;color:var(--ink);background:#fff;
font-family:"Atkinson Hyperlegible","Noto Sans",Arial,Helvetica,sans-serif;line-height:1.5;
overflow-wrap:break-word}
.clinic .draft{flex-basis:100%;border:2px solid var(--alert);color:var(--alert);
padding:.25rem .5rem;margin:0 0 .5rem}
.preface{border-bottom:1px solid var(--rule);margin-bottom:1rem}
header.clinic{border-bottom:3px solid var(--accent);padding-bottom:.5rem;margin-bottom:1rem;
display:flex;flex-wrap:wrap;gap:.25rem 1.5rem;justify-content:space-between}
.clinic-name{font-weight:700;font-size:1.25rem;margin:0}
.clinic p{margin:0}
.clinic img{max-width:10rem;height:auto;display:block;margin-bottom:.25rem}
h1{font-size:2rem;line-height:1.2;color:var(--accent);margin:.5rem 0 .25rem}
h2{font-size:1.375rem;line-height:1.25;color:var(--accent);margin:1.75rem 0 .5rem}
h3{font-size:1.125rem;margin:0 0 .5rem}
.subtitle{font-size:1.125rem;margin:0 0 1rem}
dl.patient{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0 0 1rem;
padding:.75rem 1rem;background:var(--accent-tint)}
dl.patient dt{font-weight:700}
dl.patient dd{margin:0}
table{border-collapse:collapse;width:100%}
caption{text-align:left}
th,td{text-align:left;vertical-align:top;padding:.4rem .5rem;border-bottom:1px solid var(--rule)}
thead th{background:var(--accent);color:#fff}
tbody th{font-weight:700;width:40%}
table.pairs tbody tr{background:var(--accent-tint)}
tbody tr:nth-child(even){background:var(--row)}
td p{margin:0}
td p+p{margin-top:.25rem}
.help{border:3px solid var(--alert);background:var(--alert-tint);margin:1.5rem 0;padding:0}
.help h2{margin:0;padding:.5rem 1rem;color:var(--alert)}
.help .level{padding:.5rem 1rem 1rem}
.help .urgent h3{background:var(--alert);color:#fff;margin:0 -1rem .5rem;padding:.4rem 1rem}
.help .level+.level{border-top:2px solid var(--alert)}
.help ul{margin:.25rem 0 .75rem;padding-left:1.5rem}
.help .contacts{display:flex;flex-wrap:wrap;gap:.5rem 2rem;margin:0;padding:0;list-style:none}
.contacts li{margin:0}
.contacts .who{display:block}
.contacts a{font-size:1.375rem;font-weight:700;color:var(--ink)}
a{color:var(--accent)}
.support{display:grid;grid-template-columns:auto 1fr;gap:.5rem 1rem;align-items:center;
margin:.5rem 0 1rem}
.support svg{width:7rem;height:7rem;display:block}
.support p{margin:0}
.support .name{font-weight:700}
.notes p{white-space:pre-wrap;margin:0 0 .5rem}
ul.ticks{list-style:none;padding:0}
ul.ticks li{padding-left:2rem;position:relative;margin:.25rem 0}
ul.ticks li::before{content:"";position:absolute;left:0;top:.2em;width:1.1em;height:1.1em;
border:2px solid var(--ink)}
.signatures{display:grid;grid-template-columns:2fr 1fr;gap:2.5rem 1.5rem;margin-top:2rem}
.signatures p{border-top:1px solid var(--ink);margin:0;padding-top:.25rem;color:var(--muted)}
.sources{font-size:.875rem;color:var(--muted);margin-top:1.5rem}
footer.record{border-top:1px solid var(--rule);margin-top:1.5rem;padding-top:.5rem;
font-size:.875rem;color:var(--muted)}
footer.record p{margin:0}
@media (max-width:30rem){body{padding:.75rem}h1{font-size:1.625rem}
dl.patient{grid-template-columns:1fr}dl.patient dd{margin-bottom:.25rem}
tbody th{width:auto}.support{grid-template-columns:1fr}
.signatures{grid-template-columns:1fr}}
@media print{@page{margin:15mm 18mm}
body{max-width:none;padding:0;font-size:11pt}html.large body{font-size:18pt}
a{color:inherit;text-decoration:none}
.help,.support>*,tr,dl.patient,.signatures{break-inside:avoid}
h2,h3{break-after:avoid}
thead{display:table-header-group}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""
_STYLE = re.sub(r"\n", "", _STYLE)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# No script, no outside request: only the page's own style and its data: images.
CSP = f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src data:"
_LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif"}  # fmt: skip


def _e(text: str) -> str:
    return escape(text, quote=True)


def html_lang(locale: str) -> str:
    """A Babel/POSIX locale name as a BCP 47 language tag: ``en_GB`` -> ``en-GB``."""
    return locale.split(".")[0].split("@")[0].replace("_", "-")


def tel_href(number: str) -> str:
    """A phone number as a ``tel:`` address: its digits (and a leading +) only."""
    digits = re.sub(r"[^\d+]", "", number)
    return "tel:" + (digits[:1] + digits[1:].replace("+", ""))


def render_html(document: Document, *, preface: str = "") -> bytes:
    """The document as one self-contained UTF-8 web page (deterministic: same document, same
    bytes).

    ``preface``: markup put first in the page, before the clinic's header (an email's note).
    It is the caller's, already escaped; nothing from the document goes there."""
    return "".join(_page(document, preface)).encode("utf-8")


def _page(doc: Document, preface: str = "") -> list[str]:
    labels = doc.labels
    lang = html_lang(doc.locale)
    out = [
        "<!DOCTYPE html>\n",
        f'<html lang="{_e(lang)}"{" class=large" if doc.large_print else ""}>\n<head>\n',
        '<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n',
        '<meta name="referrer" content="no-referrer">\n',
        # Whose page this is (a digest, not the patient's details): generate reads it back
        # before it replaces a file.
        f'<meta name="discharge-patient" content="{_e(doc.owner)}">\n' if doc.owner else "",
        # The title is the sheet's own, never a patient's name (tab titles are seen by others).
        f"<title>{_e(doc.sheet_title)}</title>\n",
        f"<style>{_STYLE}</style>\n</head>\n<body>\n",
    ]
    if preface:
        out.append(f'<div class="preface">\n{preface}\n</div>\n')
    out += _header(doc)
    out.append("<main>\n")
    out.append(f"<h1>{_e(doc.title)}</h1>\n")
    if doc.subtitle:
        out.append(f'<p class="subtitle">{_e(doc.subtitle)}</p>\n')
    out.append('<dl class="patient">\n')
    for label, value in doc.patient_rows:
        out.append(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>\n")
    out.append("</dl>\n")
    # The sheet's order: its introduction first (after a loss, kind words before any warning
    # sign), then the dates, when to get help, the next appointment and the medicines.
    out += _blocks(doc.intro)
    out += _timeline(doc)
    out += _help(doc)
    out += _follow_up(doc)
    out += _medicines(doc)
    for number, section in enumerate(doc.sections, 1):
        out.append(f'<section aria-labelledby="s{number}">\n')
        out.append(f'<h2 id="s{number}">{_e(section.heading)}</h2>\n')
        out += _blocks(section.blocks)
        out.append("</section>\n")
    out += _support(doc)
    if doc.notes:
        out.append('<section class="notes" aria-labelledby="notes">\n')
        out.append(f'<h2 id="notes">{_e(labels.notes)}</h2>\n')
        for paragraph in re.split(r"\n[ \t]*\n", doc.notes.strip("\n")):
            out.append(f"<p>{_e(paragraph)}</p>\n")
        out.append("</section>\n")
    out += _teach_back(doc)
    out += _signature(doc)
    out.append(f'<p class="sources">{_e(doc.sources)}</p>\n')
    out.append("</main>\n")
    footer = doc.footer
    out.append('<footer class="record">\n')
    out.append(f"<p>{_e(footer.patient_name)}</p>\n")
    if footer.ids:
        out.append(f"<p>{_e(footer.ids)}</p>\n")
    out.append(f"<p>{_e(footer.clinic_line)}</p>\n<p>{_e(footer.template)}</p>\n")
    out.append("</footer>\n</body>\n</html>\n")
    return out


def _header(doc: Document) -> list[str]:
    clinic = doc.letterhead
    out = ['<header class="clinic">\n']
    if doc.draft:  # unapproved wording: said first, as at the top of every printed page
        out.append(f'<p class="draft"><strong>{_e(doc.draft)}</strong></p>\n')
    out.append("<div>\n")
    if clinic.logo:
        logo = _logo(Path(clinic.logo), doc.labels.logo_alt.format(clinic=clinic.name))
        out.append(logo)
    out.append(f'<p class="clinic-name">{_e(clinic.name)}</p>\n')
    if clinic.address:
        out.append(f"<p>{_e(', '.join(clinic.address))}</p>\n")
    out.append("</div>\n<div>\n")
    contacts = [(c.who, c.number) for c in doc.help_clinic.contacts]
    for line, (_, number) in zip(doc.header_contacts, contacts, strict=False):
        out.append(f"<p>{_linked_number(line, number)}</p>\n")
    for line in doc.header_contacts[len(contacts) :]:
        out.append(f"<p>{_e(line)}</p>\n")
    out.append("</div>\n</header>\n")
    return out


def _linked_number(line: str, number: str) -> str:
    """``line`` with its phone ``number`` as a link a phone can dial."""
    before, found, after = line.rpartition(number)
    if not found:
        return _e(line)
    return f'{_e(before)}<a href="{_e(tel_href(number))}">{_e(number)}</a>{_e(after)}'


def _logo(path: Path, alt: str) -> str:
    kind = _LOGO_TYPES.get(path.suffix.lower())
    try:
        data = path.read_bytes() if kind else b""
    except OSError:
        data = b""
    if not data:
        return ""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:{kind};base64,{encoded}" alt="{_e(alt)}">\n'


def _blocks(blocks: tuple[Block, ...]) -> list[str]:
    out = []
    for block in blocks:
        if block.kind == "para":
            out.append(f"<p>{_e(block.items[0])}</p>\n")
        else:
            out.append("<ul>\n" + "".join(f"<li>{_e(i)}</li>\n" for i in block.items) + "</ul>\n")
    return out


def _timeline(doc: Document) -> list[str]:
    labels = doc.labels
    out = [
        '<section aria-labelledby="timeline">\n',
        f'<h2 id="timeline">{_e(labels.timeline)}</h2>\n',
        "<table>\n<thead>\n<tr>",
        f'<th scope="col">{_e(labels.timeline_when)}</th>',
        f'<th scope="col">{_e(labels.timeline_what)}</th>',
        "</tr>\n</thead>\n<tbody>\n",
    ]
    for row in doc.timeline:
        when = "<br>".join(_e(line) for line in row.when)
        what = "".join(f"<p>{_e(label)}</p>" for label in row.labels)
        out.append(f'<tr><th scope="row">{when}</th><td>{what}</td></tr>\n')
    out.append("</tbody>\n</table>\n</section>\n")
    return out


def _follow_up(doc: Document) -> list[str]:
    """The next appointment: when and where, a row header and its value each."""
    follow_up = doc.follow_up
    if follow_up is None:
        return []
    labels = doc.labels
    rows = [(labels.timeline_when, follow_up.when)]
    if follow_up.place:
        rows.append((labels.where, follow_up.place))
    out = [
        '<section aria-labelledby="next">\n',
        f'<h2 id="next">{_e(labels.next_appointment)}</h2>\n<table class="pairs">\n<tbody>\n',
    ]
    out += [f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>\n' for k, v in rows]
    out.append("</tbody>\n</table>\n</section>\n")
    return out


def _medicines(doc: Document) -> list[str]:
    """The medicines: a table with column headers, each cell exactly as written."""
    if not doc.medicines:
        return []
    labels = doc.labels
    heads = (labels.medicine, labels.medicine_how, labels.medicine_how_long)
    out = [
        '<section aria-labelledby="medicines">\n',
        f'<h2 id="medicines">{_e(labels.medicines)}</h2>\n<table>\n<thead>\n<tr>',
        *(f'<th scope="col">{_e(head)}</th>' for head in heads),
        "</tr>\n</thead>\n<tbody>\n",
    ]
    for m in doc.medicines:
        out.append(f"<tr><td>{_e(m.name)}</td><td>{_e(m.how)}</td><td>{_e(m.how_long)}</td></tr>\n")
    out.append("</tbody>\n</table>\n</section>\n")
    return out


def _help(doc: Document) -> list[str]:
    """The help box: one labelled section, each level a heading, its signs, whom to call."""
    out = [
        '<section class="help" aria-labelledby="help">\n',
        f'<h2 id="help">{_e(doc.help_heading)}</h2>\n',
    ]
    out += _level(doc.help_urgent, "urgent")
    out += _level(doc.help_clinic, "clinic")
    out.append("</section>\n")
    return out


def _level(level: HelpLevel, kind: str) -> list[str]:
    out = [f'<div class="level {kind}">\n<h3>{_e(level.heading)}</h3>\n']
    if level.intro:
        out.append(f"<p>{_e(level.intro)}</p>\n")
    if level.signs:
        out.append("<ul>\n" + "".join(f"<li>{_e(s)}</li>\n" for s in level.signs) + "</ul>\n")
    out.append(_contacts(level.contacts))
    out.append("</div>\n")
    return out


def _contacts(contacts: tuple[Contact, ...]) -> str:
    items = "".join(
        f'<li><span class="who">{_e(c.who)}</span> '
        f'<a href="{_e(tel_href(c.number))}">{_e(c.number)}</a></li>\n'
        for c in contacts
    )
    return f'<ul class="contacts">\n{items}</ul>\n'


def _support(doc: Document) -> list[str]:
    if not doc.support:
        return []
    labels = doc.labels
    out = [
        '<section aria-labelledby="support">\n',
        f'<h2 id="support">{_e(labels.support)}</h2>\n',
        f"<p>{_e(labels.scan)}</p>\n",
    ]
    for number, item in enumerate(doc.support, 1):
        out.append('<div class="support">\n')
        if item.url:
            out.append(_qr_svg(item.url, labels.qr_alt.format(url=item.url), f"qr{number}"))
        else:
            out.append("<span></span>\n")
        # The clinic names its resources in its own language: say so where it differs.
        name = _e(item.name)
        if item.language:
            name = f'<span lang="{_e(item.language)}">{name}</span>'
        if item.note:
            name += f" {_e(item.note)}"
        out.append(f'<div>\n<p class="name">{name}</p>\n')
        if item.phone:
            out.append(f"<p>{_linked_number(item.phone, item.phone)}</p>\n")
        if item.url:
            out.append(f'<p><a href="{_e(item.url)}">{_e(item.url)}</a></p>\n')
        out.append("</div>\n</div>\n")
    out.append("</section>\n")
    return out


def _qr_svg(url: str, alt: str, ident: str) -> str:
    side, path = qr_svg_path(url)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        f'role="img" aria-labelledby="{ident}" shape-rendering="crispEdges">'
        f'<title id="{ident}">{_e(alt)}</title>'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path d="{path}" fill="#1a1a1a"/></svg>\n'
    )


def _teach_back(doc: Document) -> list[str]:
    teach = doc.teach_back
    if teach is None:
        return []
    out = ['<section aria-labelledby="teach">\n', f'<h2 id="teach">{_e(teach.heading)}</h2>\n']
    if teach.intro:
        out.append(f"<p>{_e(teach.intro)}</p>\n")
    out.append('<ul class="ticks">\n')
    out += [f"<li>{_e(q)}</li>\n" for q in teach.questions]
    out.append("</ul>\n</section>\n")
    return out


def _signature(doc: Document) -> list[str]:
    labels = doc.labels
    out = [
        '<section aria-labelledby="before">\n',
        f'<h2 id="before">{_e(labels.before_you_go)}</h2>\n',
        f"<p>{_e(labels.statement)}</p>\n",
        '<div class="signatures">\n',
    ]
    out += [f"<p>{_e(label)}</p>\n" for label in labels.signatures]
    out.append("</div>\n</section>\n")
    return out
