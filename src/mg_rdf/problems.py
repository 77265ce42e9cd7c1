"""Problems found in a corpus, phrased for the person who edits it.

Every problem names a file, where known the line and the field, says what is
wrong, and quotes the value. Reading, mapping and validation all report through
these types; none of them raises on bad input.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    VIOLATION = "violation"   # the corpus breaks its own schema: validate exits non-zero
    WARNING = "warning"       # suspicious or lossy: fails only under --strict
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"violation": 0, "warning": 1, "info": 2}[self.value]


class MgRdfError(Exception):
    """An error the user can act on; the CLI prints it without a traceback."""


@dataclass(frozen=True, order=True)
class Problem:
    path: str                 # corpus-relative path, e.g. entities/campaigns/camp-x.md
    line: int | None
    field: str | None         # dotted field path, e.g. sources[2].url
    message: str
    value: str | None = None
    severity: Severity = Severity.VIOLATION
    rule: str = ""            # short machine name of the rule, e.g. "dangling-reference"

    def format(self) -> str:
        loc = f"{self.path}:{self.line}" if self.line else self.path
        fld = f" {self.field}:" if self.field else ""
        val = f" ({_short(self.value)})" if self.value is not None else ""
        return f"{loc}{fld} {self.message}{val}"


def _short(value: str, limit: int = 120) -> str:
    value = value.replace("\n", "\\n")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def counts(problems: list[Problem]) -> Counter[str]:
    return Counter(p.severity.value for p in problems)
