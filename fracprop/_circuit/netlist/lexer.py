"""Lines to cards: comments, continuation lines and tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"[()=]|[^\s(),=]+")


_DOLLAR_COMMENT = re.compile(r"(^|\s)\$(\s|$)")


@dataclass
class _Card:
    """One logical card: continuation lines joined, comments removed."""

    line: int
    text: str

    @property
    def tokens(self) -> list[str]:
        return _TOKEN.findall(self.text)


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("*"):
        return ""
    line = line.split(";", 1)[0]
    match = _DOLLAR_COMMENT.search(line)
    if match is not None:
        line = line[: match.start()]
    return line.strip()
