"""Dates as the corpus writes them, typed by their real precision.

``2021-06-07`` -> xsd:date, ``2021-06`` -> xsd:gYearMonth, ``2021`` (string or
int) -> xsd:gYear. Anything else is not a date; the caller keeps it as text and
reports it. A person's affiliation ``period`` is free text; ``period_bounds``
reads the start and end out of the forms the corpus uses, when it can.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .vocab import XSD

XSD_DATE = XSD + "date"
XSD_GYEARMONTH = XSD + "gYearMonth"
XSD_GYEAR = XSD + "gYear"

_YMD = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_YM = re.compile(r"^(\d{4})-(\d{2})$")
_Y = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class TypedDate:
    lexical: str
    datatype: str


class NotADate(ValueError):
    """The value is not a date at any precision the schema allows."""


def typed_date(value: object) -> TypedDate:
    """Type ``value`` by its precision or raise ``NotADate`` with a reason."""
    if isinstance(value, bool):
        raise NotADate("a true/false value is not a date")
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return TypedDate(value.isoformat(), XSD_DATE)
    if isinstance(value, int):
        if 1 <= value <= 9999:
            return TypedDate(f"{value:04d}", XSD_GYEAR)
        raise NotADate("a year must have four digits")
    if not isinstance(value, str):
        raise NotADate(f"expected a date, got {type(value).__name__}")
    s = value.strip()
    if m := _YMD.match(s):
        try:
            dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as e:
            raise NotADate(f"impossible date ({e})") from None
        return TypedDate(s, XSD_DATE)
    if m := _YM.match(s):
        if not 1 <= int(m[2]) <= 12:
            raise NotADate("impossible month")
        return TypedDate(s, XSD_GYEARMONTH)
    if _Y.match(s):
        return TypedDate(s, XSD_GYEAR)
    raise NotADate("not a date of the form YYYY-MM-DD, YYYY-MM or YYYY")


_DATE_PART = r"(\d{4}(?:-\d{2}(?:-\d{2})?)?)"
_PERIOD_FORMS = (
    re.compile(rf"^{_DATE_PART}-?\s*$"),                                  # 2024- | 2018-01- | 2023
    re.compile(rf"^{_DATE_PART}\s*(?:-|–|to)\s*{_DATE_PART}$"),           # 2015-2019 | a to b
    re.compile(rf"^(?:-|–|until\s+){_DATE_PART}$"),                       # -2023
)


def period_bounds(period: object) -> tuple[TypedDate | None, TypedDate | None]:
    """(start, end) of an affiliation period where the text states them plainly.

    ``2024-`` -> (2024, None); ``2015-2019`` -> both; ``-2023`` -> (None, 2023);
    ``2023`` (a single year) -> (2023, 2023). Approximate forms such as ``~2010-``
    or ``2010s-`` give (None, None): the text is kept, nothing is invented.
    """
    if isinstance(period, int) and not isinstance(period, bool):
        period = str(period)
        try:
            d = typed_date(period)
        except NotADate:
            return None, None
        return d, d
    if not isinstance(period, str):
        return None, None
    s = period.strip()
    open_start, closed, open_end = _PERIOD_FORMS
    try:
        if s.startswith(("-", "–", "until")) and (m := open_end.match(s)):
            return None, typed_date(m[1])
        if m := closed.match(s):
            return typed_date(m[1]), typed_date(m[2])
        if m := open_start.match(s):
            start = typed_date(m[1])
            return (start, None) if s.endswith("-") else (start, start)
    except NotADate:
        return None, None
    return None, None
