"""Decks and the files they include: text encodings, lines into cards, ``.include`` and
``.lib``."""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .lexer import _Card, _strip_comment, split_lines
from .result import DEFAULT_SOURCE, NetlistError, Place

if TYPE_CHECKING:
    from .parser import _Parser

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_text(path: Path) -> str:
    """The text of a deck: UTF-8, or UTF-8/UTF-16/UTF-32 with a byte-order mark, or else
    Latin-1 (which reads any bytes, so no file fails to decode)."""
    data = path.read_bytes()
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_INCLUDE_CARDS = (".include", ".inc")


@dataclass(frozen=True)
class _File:
    """A file being read: its name in messages, the folder its relative paths start from, and
    what identifies it in the chain of open files (its resolved path and ``.lib`` section)."""

    display: str
    directory: Path
    key: tuple[str, str | None]


class DeckReader:
    """Reads a deck into cards, replacing each ``.include`` and ``.lib FILE SECTION`` card by
    the cards of that file or section."""

    def __init__(self, p: _Parser):
        self.p = p

    # -- lines into cards -----------------------------------------------------------------------
    def cards_of(
        self, text: str, source: str, included_from: tuple[tuple[str, int], ...], top: bool
    ) -> list[_Card]:
        """The cards of one file. The first line of the deck (``top``) is its title; an
        included file has no title, and a ``.end`` in it is skipped, as in ngspice."""
        lines = split_lines(text.lstrip("\ufeff"))
        first = 1
        if top:
            if not text.strip():
                raise NetlistError(f"{source}: empty netlist")
            self.p.title = lines[0].strip()
            first = 2
        cards: list[_Card] = []
        control: Place | None = None  # an open .control block
        for number, raw in enumerate(lines[first - 1 :], start=first):
            place = Place(source, number, included_from)
            line = _strip_comment(raw)
            keyword = line.split()[0].lower() if line else ""
            if control is not None:
                if keyword == ".endc":
                    control = None
                continue
            if not line:
                continue
            if line.startswith("+"):
                if not cards:
                    raise self.p.error(
                        place, f"continuation line {line!r} has no card before it to continue"
                    )
                cards[-1].text += " " + line[1:].strip()
                continue
            if keyword == ".end":
                if top:
                    break
                continue
            if keyword == ".control":
                control = place
                self.p.warn(place, "'.control' ... '.endc' block ignored")
                continue
            cards.append(_Card(place, line))
        if control is not None:
            raise self.p.error(control, "'.control' block has no '.endc'")
        return cards

    # -- the deck -------------------------------------------------------------------------------
    def read(self, text: str, source: str, path: Path | None) -> list[_Card]:
        """The cards of the deck ``text`` (read from file ``path``, or not from a file),
        includes expanded: relative paths start from the deck's folder, or from the current
        directory for a deck that is not a file."""
        if path is None:
            top = _File(source, Path.cwd(), (source, None))
        else:
            top = _File(source, path.parent, (str(path.resolve()), None))
        return self.expand(self.cards_of(text, source, (), top=True), top, (top.key,))

    def expand(
        self, cards: list[_Card], file: _File, open_files: tuple[tuple[str, str | None], ...]
    ) -> list[_Card]:
        out: list[_Card] = []
        k = 0
        while k < len(cards):
            card = cards[k]
            keyword = card.keyword
            if keyword in _INCLUDE_CARDS:
                name, rest = self.file_name(card)
                if rest:
                    raise self.p.error(
                        card,
                        f"unexpected {rest!r} after the file name in {card.text!r}; write "
                        f"'{keyword} FILE' (quote a name that has blanks)",
                    )
                out += self.include(card, file, open_files, name, None)
            elif keyword == ".lib":
                name, rest = self.file_name(card)
                words = rest.split()
                if not words:
                    # '.lib NAME' opens a section; sections are read by '.lib FILE NAME' only
                    k = self.section_end(cards, k)
                elif len(words) == 1:
                    out += self.include(card, file, open_files, name, words[0])
                else:
                    raise self.p.error(
                        card,
                        f"unexpected {' '.join(words[1:])!r} in {card.text!r}; write "
                        "'.lib FILE SECTION'",
                    )
            elif keyword == ".endl":
                raise self.p.error(card, f"{card.text!r} has no '.lib NAME' before it")
            else:
                out.append(card)
            k += 1
        return out

    def file_name(self, card: _Card) -> tuple[str, str]:
        """The file name of an ``.include``/``.lib`` card (quotes optional) and what follows."""
        keyword, rest = (card.text.split(None, 1) + [""])[:2]
        rest = rest.strip()
        if not rest:
            what = "FILE SECTION" if keyword.lower() == ".lib" else "FILE"
            raise self.p.error(card, f"{card.text!r} names no file; write '{keyword} {what}'")
        if rest[0] in "\"'":
            end = rest.find(rest[0], 1)
            if end < 0:
                raise self.p.error(card, f"the file name in {card.text!r} has no closing quote")
            name, rest = rest[1:end], rest[end + 1 :].strip()
        else:
            name, rest = (rest.split(None, 1) + [""])[:2]
        if not name:
            raise self.p.error(card, f"empty file name in {card.text!r}")
        return name, rest

    def include(
        self,
        card: _Card,
        file: _File,
        open_files: tuple[tuple[str, str | None], ...],
        name: str,
        section: str | None,
    ) -> list[_Card]:
        path = file.directory / name
        display = name if os.path.isabs(name) else _display_path(file.display, name)
        what = f"'{card.keyword} {name}'" + (f" section {section!r}" if section else "")
        try:
            resolved = str(path.resolve())
            text = read_text(path)
        except FileNotFoundError:
            raise self.p.error(
                card, f"{what}: file {name!r} not found (looked for {str(path)!r})"
            ) from None
        except OSError as e:
            raise self.p.error(card, f"{what}: cannot read {str(path)!r}: {e}") from None
        key = (resolved, section.lower() if section else None)
        if key in open_files:
            raise self.p.error(
                card,
                f"{what}: include cycle; {display} is already being read "
                "(a file may not include itself, directly or through others)",
            )
        here = (*card.place.included_from, (card.place.source, card.place.line))
        cards = self.cards_of(text, display, here, top=False)
        included = _File(display, path.parent, key)
        if section is not None:
            cards = self.section(card, cards, display, section)
        return self.expand(cards, included, (*open_files, key))

    def section_end(self, cards: list[_Card], k: int) -> int:
        """The index of the ``.endl`` that closes the ``.lib NAME`` section at ``cards[k]``."""
        for j in range(k + 1, len(cards)):
            keyword = cards[j].keyword
            if keyword == ".endl":
                return j
            if keyword == ".lib" and len(cards[j].text.split()) == 2:
                break
        raise self.p.error(
            cards[k],
            f"{cards[k].text!r} opens a library section that has no '.endl'; to read a "
            "section of a library write '.lib FILE SECTION', to read a whole file "
            "'.include FILE'",
        )

    def section(self, card: _Card, cards: list[_Card], display: str, section: str) -> list[_Card]:
        """The cards of section ``section`` of a library file."""
        found: list[str] = []
        k = 0
        while k < len(cards):
            words = cards[k].text.split()
            if words[0].lower() == ".lib" and len(words) == 2:
                end = self.section_end(cards, k)
                found.append(words[1])
                if words[1].lower() == section.lower():
                    return cards[k + 1 : end]
                k = end
            k += 1
        listing = f"its sections are {', '.join(found)}" if found else "it has no '.lib NAME'"
        raise self.p.error(
            card, f"library {display} has no section {section!r} ({listing}) in {card.text!r}"
        )


def _display_path(including: str, name: str) -> str:
    """How an included file is named in messages: its path from the including file's folder."""
    folder = "" if including == DEFAULT_SOURCE else os.path.dirname(including)
    return os.path.normpath(os.path.join(folder, name))
