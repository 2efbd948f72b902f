"""Reading level of what a patient reads: Flesch-Kincaid grade, per part of the document.

Pure Python, no dependencies, so `discharge templates check` can run it anywhere. Syllables
are counted with a vowel-group rule plus the usual English corrections (silent final "e",
"-le", "-ed"); a test keeps it close to pyphen's dictionary hyphenation on our own texts.

Dates and times are names, not hard words: they are replaced by "that day" before measuring.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from discharge.document import Document

GRADE_LIMIT = 6.0  # US school grade: the most a patient sheet should need (issue 9)

_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SENTENCE_END = re.compile(r"[.!?:;]+(?:\s|$)|\n")
_VOWELS = re.compile(r"[aeiouy]+")
_DATE = re.compile(
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday),? "
    r"(?:\d{1,2} [A-Z][a-z]+,? \d{4}|[A-Z][a-z]+ \d{1,2}, \d{4})(?: at \d{1,2}:\d{2}(?: [AP]M)?)?"
)
# Words the vowel rule gets wrong and that our templates use.
_EXCEPTIONS = {
    "every": 2, "different": 3, "several": 3, "evening": 2, "evenings": 2, "uterus": 3,
    "area": 3, "being": 2, "going": 2, "doing": 2, "ovulate": 3, "fallopian": 4,
    "hysterosalpingogram": 7, "diarrhoea": 4, "diarrhea": 4, "period": 3, "periods": 3,
    "idea": 3, "people": 2, "one": 1, "once": 1, "someone": 2, "science": 2, "quiet": 2,
    "create": 2, "anything": 3, "everyone": 3, "everything": 3, "somewhere": 2,
    "miscarriage": 3, "miscarriages": 4, "marriage": 2, "carriage": 2, "something": 2,
    "sometimes": 2, "easier": 3, "earlier": 3, "easily": 3,
}  # fmt: skip


def syllables(word: str) -> int:
    """Syllables in one English word (at least 1)."""
    w = word.lower().strip("'’-")
    if "-" in w:
        return sum(syllables(part) for part in w.split("-") if part)
    w = w.removesuffix("'s").removesuffix("’s")
    if w in _EXCEPTIONS:
        return _EXCEPTIONS[w]
    if len(w) <= 3:
        return 1
    count = len(_VOWELS.findall(w))
    consonant_before = len(w) > 2 and w[-3] not in "aeiouy"
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1  # silent final e: "take", "pale" (but "-ble", "-ple" keep theirs)
    elif w.endswith("ed") and consonant_before and not w.endswith(("ted", "ded")) and count > 1:
        count -= 1  # "stopped", "passed" (but "waited", "needed", "worried" keep theirs)
    elif (
        w.endswith("es")
        and consonant_before
        and not w.endswith(("ses", "zes", "ches", "shes", "ges", "ces", "xes", "les"))
        and count > 1
    ):
        count -= 1  # "takes", "tubes" (but "couples", "changes", "studies" keep theirs)
    # A silent e inside: "rarely", "safely", "careful", "movement".
    count -= len(re.findall(r"[^aeiouy]e(?:ly|ful|ment|ness)(?:s)?$", w))
    for pair in ("ia", "io", "eo", "ua", "uo", "yi"):  # two syllables: "period", "trying"
        count += w.count(pair)
    count -= len(re.findall(r"[tsc]i[ao]", w))  # but one in "-tion", "-sion", "-cial"
    return max(1, count)


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def sentences(text: str) -> int:
    return max(1, sum(1 for s in _SENTENCE_END.split(text) if _WORD.search(s)))


def flesch_kincaid_grade(text: str) -> float:
    """US school grade: 0.39 (words per sentence) + 11.8 (syllables per word) - 15.59.

    A line break ends a sentence too, so headings and bullet points count as sentences.
    """
    text = _DATE.sub("that day", text)
    found = words(text)
    if not found:
        return 0.0
    count = sum(syllables(w) for w in found)
    return 0.39 * len(found) / sentences(text) + 11.8 * count / len(found) - 15.59


@dataclass(frozen=True)
class Part:
    """One part of a document as a patient reads it, with its reading level."""

    name: str  # "section 'Your body'", "timeline row 'sex'", "help: call 999 now"
    text: str

    @property
    def grade(self) -> float:
        return flesch_kincaid_grade(self.text)


def parts(doc: Document) -> Iterator[Part]:
    """Every piece of patient-facing guidance, one Part per section (notes are the nurse's)."""
    yield Part("title", "\n".join(filter(None, (doc.title, doc.subtitle))))
    if doc.intro:
        yield Part("intro", "\n".join(i for b in doc.intro for i in b.items))
    for m in doc.milestones:
        yield Part(f"timeline row {m.key!r}", m.label)
    for section in doc.sections:
        body = "\n".join(i for b in section.blocks for i in b.items)
        yield Part(f"section {section.heading!r}", f"{section.heading}\n{body}")
    for name, level in (("help: urgent", doc.help_urgent), ("help: clinic", doc.help_clinic)):
        yield Part(name, "\n".join(filter(None, (level.heading, level.intro, *level.signs))))
    if doc.teach_back:
        tb = doc.teach_back
        yield Part("teach-back", "\n".join(filter(None, (tb.heading, tb.intro, *tb.questions))))


def over_limit(doc: Document, limit: float = GRADE_LIMIT) -> list[str]:
    """One line per part that reads above `limit`, naming the part and its grade."""
    where = doc.procedure_id + (f" ({doc.variant})" if doc.variant else "")
    return [
        f"{where}: {part.name} reads at grade {part.grade:.1f} (at most {limit:g})"
        for part in parts(doc)
        if part.grade > limit
    ]
