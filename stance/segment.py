"""Document -> sentences with character offsets.

Built on pysbd, with the few rules these news and Hansard texts need:

* every line is its own paragraph, so headings, bylines, credits, ``READ MORE:`` lines,
  timestamps and party/constituency lines are never glued to their neighbours;
* pysbd splits after honorifics such as ``hon.`` -- those pieces are joined again;
* an abbreviation (pysbd's list, ours, and citation ones such as ``al.`` or ``s.``) followed
  by a bracket, a digit or a lower-case word does not end a sentence
  (``Levy and Robinson et al. [2022] argue ...``, ``the Act (s. (122)) applies``);
* pysbd keeps several sentences inside one quotation together -- they are split at a
  sentence end followed by a capitalised word;
* a piece with nothing visible but punctuation (``...``, ``—``, ``* * *``) or with nothing
  visible at all (zero-width space, BOM, soft hyphen, direction marks) is no sentence.

Line breaks are those of :meth:`str.splitlines`: ``\\n``, ``\\r\\n``, a lone ``\\r``, and
``\\x0b \\x0c \\x1c \\x1d \\x1e \\x85 \\u2028 \\u2029``; the unit separator ``\\x1f`` (which
pysbd cannot read before a numbered item) is whitespace. Offsets always index the text as
given, so ``text[s.start:s.end] == s.text``.

Linear time: pysbd is slow (about 10 µs a character) and quadratic on long inputs, so a line
reaches it only in small pieces. A line is first cut where the result is known without pysbd
(a plain word, a full stop and a capital; in plain text also a lower-case word); stretches
whose only candidate ends follow abbreviations skip pysbd; what is left and still longer
than :data:`_WINDOW` characters goes to pysbd in overlapping windows whose decisions are
trusted only away from the window's edges. Tests check that this gives the same sentences as
pysbd on whole lines, on every text of the repository and on generated long lines.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from stance.text import has_visible_text

# Abbreviations after which a full stop never ends a sentence in these texts.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "hon",
        "rt",
        "st",
        "sen",
        "rep",
        "gov",
        "gen",
        "col",
        "sgt",
        "insp",
        "supt",
        "det",
        "e.g",
        "i.e",
        "etc",
        "vs",
        "no",
        "art",
        "para",
        "cf",
    ]
)
# Citation abbreviations missing from pysbd's list; with pysbd's and ours they do not end a
# sentence when a bracket, a digit or a lower-case word follows.
_CITATION_ABBREVIATIONS = frozenset(
    ["al", "s", "ss", "sch", "reg", "regs", "ch", "vol", "approx", "ibid", "n", "nn", "paras", "arts"]
)
_TRAILING_WORD = re.compile(r"([A-Za-z][A-Za-z.]*)\.\W*$")
_WORDISH = re.compile(r"[^A-Za-z.]")
# "11." opening a numbered question is a list marker, not a sentence.
_LIST_MARKER = re.compile(r"\s*\(?\d{1,3}[.)]\s*")
# A sentence end inside a quotation: . ! or ? (optionally closed by a quote), space, then
# an optional opening quote and a capital letter or digit.
_INNER_BOUNDARY = re.compile(r"(?<=[.!?])[\"”’']?\s+(?=[\"“‘']?[A-Z0-9])")
_OPENING_BRACKETS = "([{"
_NON_SPACE = re.compile(r"\S")
_SPACE = re.compile(r"\s")

# Line breaks: exactly those of str.splitlines, so every reader and the segmenter agree.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# What pysbd is shown instead of a character it cannot take: the unit separator raises inside
# pysbd before a numbered item; pysbd's own placeholder characters would be turned into
# punctuation. Each maps to one character, so offsets into the view are offsets into the text.
_PYSBD_VIEW = str.maketrans(
    {"\x1f": " ", **{ch: "\ue000" for ch in "∯∮ȸȹ☉☈☇☄♬♭ᓰᓱᓳᓴᓷᓸ✂⌬⎋☏ƪ♟♝"}}
)

# Windows of a long stretch handed to pysbd: at most _WINDOW characters; pysbd's decisions are
# trusted only _MARGIN characters or more from an edge that is not a sentence start.
_WINDOW = 1500
_MARGIN = 250
_PAIRS = (("“", "”"), ("(", ")"), ("[", "]"), ("«", "»"))
# straight single quotes opening (not after a letter) and closing (not before one) a quotation
_OPENING_SINGLE = re.compile(r"(?<!\w)'(?=\w)")
_CLOSING_SINGLE = re.compile(r"(?<=[\w.,!?])'(?!\w)")


@dataclass(frozen=True)
class Sentence:
    """One sentence: its text and its ``[start, end)`` character offsets in the document."""

    text: str
    start: int
    end: int


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=False)


def _trailing_word(text: str, start: int = 0, end: int | None = None) -> str:
    """The lower-cased word before the final full stop of ``text[start:end]`` (closing
    punctuation and whitespace allowed after it), or ``""``. Reads a bounded tail unless the
    word reaches past it, so a call costs O(1) on long text."""
    end = len(text) if end is None else end
    while end > start and text[end - 1].isspace():
        end -= 1
    tail = max(start, end - 200)
    match = _TRAILING_WORD.search(text, tail, end)
    if tail > start and (match is None or not _WORDISH.search(text, tail, match.start())):
        # the word (or the punctuation after it) may reach past the tail: read it all
        match = _TRAILING_WORD.search(text, start, end)
    return match.group(1).lower().rstrip(".") if match else ""


def _ends_with_abbreviation(text: str, start: int = 0, end: int | None = None) -> bool:
    return _trailing_word(text, start, end) in _ABBREVIATIONS


def _joins(text: str, start: int, end: int, after: str) -> bool:
    """Whether the piece ``text[start:end]`` runs on into a next piece whose first visible
    character is ``after`` (a project abbreviation always does; pysbd's and the citation
    ones do before a bracket, a digit or a lower-case letter)."""
    word = _trailing_word(text, start, end)
    if not word:
        return False
    if word in _ABBREVIATIONS:
        return True
    return bool(after) and (after.islower() or after.isdigit() or after in _OPENING_BRACKETS) and (
        word in _rule_two_abbreviations())


def _first_visible(text: str, start: int) -> str:
    """The first non-whitespace character of ``text`` from ``start``, or ``""``."""
    match = _NON_SPACE.search(text, start)
    return match.group(0) if match else ""


def _split_inner(piece: str) -> list[str]:
    """Split a pysbd piece at sentence ends it missed, never after an abbreviation."""
    parts: list[str] = []
    cursor = 0
    for match in _INNER_BOUNDARY.finditer(piece):
        # keep a closing quote with the sentence it closes
        cut = match.start() + (len(match.group(0)) - len(match.group(0).lstrip("\"”’'")))
        if _ends_with_abbreviation(piece, cursor, cut) or _LIST_MARKER.fullmatch(piece, cursor, cut):
            continue
        parts.append(piece[cursor:cut])
        cursor = cut
    parts.append(piece[cursor:])
    return parts


# Where pysbd could end a sentence inside a line: . ! ? or … (closing quotes or brackets may
# follow), then whitespace and more text; or a closing bracket before a capital, where pysbd
# splits off image credits such as "(Image: Handout)". A line without one is a single sentence
# whatever pysbd's rules say, so pysbd (most of the cost of scoring with the TF-IDF model) is
# skipped; tests check that both paths agree on every line of the seeds and the written sets.
_CANDIDATE_END = re.compile(r"[.!?…][\"”’')\]]*\s+\S|\)\s+[\"“‘']?[A-Z]")


# A sentence end no rule of pysbd's or ours keeps inside a sentence: a plain word of two or
# more letters that is no known abbreviation (or a number of four or more digits, a year),
# then . ! or ? (and a closing quote), whitespace, and a capital (maybe behind an opening
# quote). :func:`_split_inner` splits every pysbd piece there anyway, so cutting the line there
# first lets most parts skip pysbd (about 2 ms a call).
_SAFE_END = re.compile(r"(?<![\w.'’-])([A-Za-z]{2,}|\d{4,})[.!?][\"”’']?(?=\s+[\"“‘']?[A-Z])")

# The same before a lower-case word (speech-to-text, forum posts): pysbd ends a sentence after
# a plain word that is no abbreviation, unless a quotation, a bracket, a list or a number
# rule of its own reaches across. So these cuts are made only in plain text: letters, spaces
# and simple punctuation, no single letter before a full stop (list items), no roman numeral.
_LOWER_END = re.compile(r"(?<![\w.'’-])([A-Za-z]{2,})\.(?=[ \t]+[a-z])")
_NOT_PLAIN = re.compile(r"[^A-Za-z \t,;:.!?’'-]|--|\s'|(?<![A-Za-z])[A-Za-z][.)]")
_ROMAN = re.compile(r"[ivxlcdm]+", re.IGNORECASE)


@lru_cache(maxsize=1)
def _known_abbreviations() -> frozenset[str]:
    from pysbd.lang.english import English

    known = English.Abbreviation
    return frozenset(a.lower() for a in (*known.ABBREVIATIONS, *known.PREPOSITIVE_ABBREVIATIONS,
                                         *known.NUMBER_ABBREVIATIONS)) | _ABBREVIATIONS


@lru_cache(maxsize=1)
def _rule_two_abbreviations() -> frozenset[str]:
    return _known_abbreviations() | _CITATION_ABBREVIATIONS


def _safe_cuts(line: str) -> list[int]:
    """Offsets in ``line`` where a sentence ends whatever pysbd says, in order."""
    cuts = [m.end() for m in _SAFE_END.finditer(line) if m.group(1).lower() not in _known_abbreviations()]
    bounds = [0, *cuts, len(line)]
    lower: list[int] = []
    for start, end in zip(bounds, bounds[1:]):
        if _LOWER_END.search(line, start, end) and not _NOT_PLAIN.search(line, start, end):
            lower += [m.end() for m in _LOWER_END.finditer(line, start, end)
                      if m.group(1).lower() not in _rule_two_abbreviations() and not _ROMAN.fullmatch(m.group(1))]
    return sorted(set(cuts) | set(lower))


def _only_joins(part: str) -> bool:
    """Whether every place pysbd could end a sentence in ``part`` follows an abbreviation that
    joins the next piece again, so the part is one sentence without asking pysbd."""
    for match in _CANDIDATE_END.finditer(part):
        space = _SPACE.search(part, match.start(), match.end())
        if space is None or not _joins(part, 0, space.start(), _first_visible(part, space.start())):
            return False
    return True


def _line_pieces(line: str) -> list[str]:
    if not _CANDIDATE_END.search(line):
        return [line]
    bounds = [0, *_safe_cuts(line), len(line)]
    pieces: list[str] = []
    for start, end in zip(bounds, bounds[1:]):
        part = line[start:end]
        pieces.extend(_pysbd_pieces(part) if _CANDIDATE_END.search(part) and not _only_joins(part) else [part])
    return pieces


def _pysbd_cuts(text: str) -> list[int]:
    """Offsets in ``text`` where pysbd starts a new sentence (one call, no windows)."""
    cuts: list[int] = []
    cursor = 0
    for raw in _segmenter().segment(text):
        found = text.find(raw, cursor)
        if found < 0:  # pysbd dropped or rewrote this piece: keep its text in the previous one
            continue
        if found > 0:
            cuts.append(found)
        cursor = found + len(raw)
    return cuts


def _window_end(text: str, start: int) -> int:
    """Where a window of ``text`` from ``start`` ends: after the last candidate sentence end in
    its second half, else after its last whitespace there, else at :data:`_WINDOW` characters."""
    low, high = start + _WINDOW // 2, start + _WINDOW
    last = None
    for match in _CANDIDATE_END.finditer(text, low, high):
        last = match
    if last is not None:
        return last.end() - 1
    space = max(text.rfind(" ", low, high), text.rfind("\t", low, high))
    return space + 1 if space >= 0 else high


def _balanced_restart(text: str, start: int, found: list[int]) -> int | None:
    """The last of the cuts ``found`` (a few tried) at least ``_MARGIN`` past ``start`` with every
    quotation and bracket opened since ``start`` closed: a window started there reads as pysbd
    reads that sentence in the whole line. ``None`` if there is none."""
    for cut in found[::-1][:5]:
        if cut - start < _MARGIN:
            break
        stretch = text[start:cut]
        if (all(stretch.count(a) == stretch.count(b) for a, b in _PAIRS) and stretch.count('"') % 2 == 0
                and len(_OPENING_SINGLE.findall(stretch)) == len(_CLOSING_SINGLE.findall(stretch))):
            return cut
    return None


def _windowed_cuts(text: str) -> list[int]:
    """:func:`_pysbd_cuts` of ``text`` in bounded windows: linear in ``len(text)``.

    A window that starts at a sentence start (one pysbd found) is trusted from its start; one
    that starts inside a sentence (no end was found in the last window) only ``_MARGIN``
    characters in, where the window before stopped being trusted. The window's end is never
    trusted: cuts within ``_MARGIN`` of it are left to the next window.
    """
    cuts: list[int] = []
    start = trusted = 0
    while len(text) - start > _WINDOW:
        end = _window_end(text, start)
        found = [start + c for c in _pysbd_cuts(text[start:end]) if trusted < start + c <= end - _MARGIN]
        restart = _balanced_restart(text, start, found)
        if restart is not None:  # cuts after the restart are found again by the next window
            cuts += [c for c in found if c <= restart]
            start = trusted = restart
        else:
            cuts += found
            trusted = end - _MARGIN
            start = end - 2 * _MARGIN
    return cuts + [start + c for c in _pysbd_cuts(text[start:]) if start + c > trusted]


def _pysbd_pieces(line: str) -> list[str]:
    bounds = [0, *(_windowed_cuts(line) if len(line) > _WINDOW else _pysbd_cuts(line)), len(line)]
    spans: list[list[int]] = []  # [start, end) in line; a join only moves an end, so it stays linear
    for start, end in zip(bounds, bounds[1:]):
        offset = start
        for piece in _split_inner(line[start:end]):
            if spans and _joins(line, spans[-1][0], spans[-1][1], _first_visible(piece, 0)):
                spans[-1][1] = offset + len(piece)
            else:
                spans.append([offset, offset + len(piece)])
            offset += len(piece)
    return [line[a:b] for a, b in spans]


def _is_sentence(text: str) -> bool:
    """Whether ``text`` shows something other than punctuation."""
    return has_visible_text(text) and any(
        not unicodedata.category(ch).startswith(("P", "Z", "Cc", "Cf")) for ch in text)


def segment(text: str) -> list[Sentence]:
    """Split ``text`` into sentences with offsets into ``text``.

    Each line is segmented on its own (line breaks as :meth:`str.splitlines`); lines and pieces
    with no visible character other than punctuation yield nothing. ``text[s.start:s.end]``
    equals ``s.text`` for every returned sentence, sentences are in order and do not overlap,
    and the text has no surrounding whitespace. Time is linear in ``len(text)``. Never raises
    on a ``str`` (any code points, lone surrogates included); raises ``TypeError`` if ``text``
    is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"segment() needs a str, got {type(text).__name__}")
    view = text.translate(_PYSBD_VIEW)
    sentences: list[Sentence] = []
    line_start = 0
    for line_end, next_start in [*((m.start(), m.end()) for m in _LINE_BREAK.finditer(view)), (len(view), 0)]:
        line = view[line_start:line_end]
        if line.strip():
            cursor = 0
            for piece in _line_pieces(line):
                found = line.find(piece, cursor)
                if found < 0:  # pragma: no cover - pieces are slices of the line, in order
                    raise RuntimeError(f"segmenter lost text near {piece[:40]!r}")
                cursor = found + len(piece)
                lead = len(piece) - len(piece.lstrip())
                begin, end = line_start + found + lead, line_start + found + len(piece.rstrip())
                if begin < end and _is_sentence(text[begin:end]):
                    sentences.append(Sentence(text[begin:end], begin, end))
        line_start = next_start
    return sentences
