"""Lines to cards: line endings, comments, continuation lines and tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .result import Place

# A token is an expression in braces or single quotes, a parenthesis or '=', or a word.
_TOKEN = re.compile(r"\{[^{}]*\}|'[^']*'|[()=]|[^\s(),=]+")


_DOLLAR_COMMENT = re.compile(r"(^|\s)\$(\s|$)")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class _Card:
    """One logical card: continuation lines joined, comments removed."""

    place: Place
    text: str

    @property
    def line(self) -> int:
        return self.place.line

    @property
    def tokens(self) -> list[str]:
        return _TOKEN.findall(self.text)

    @property
    def keyword(self) -> str:
        return self.text.split()[0].lower()


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, whatever their endings (``\\n``, ``\\r\\n`` or ``\\r``)."""
    return _LINE_BREAK.split(text)


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("*"):
        return ""
    line = line.split(";", 1)[0]
    match = _DOLLAR_COMMENT.search(line)
    if match is not None:
        line = line[: match.start()]
    return line.strip()
