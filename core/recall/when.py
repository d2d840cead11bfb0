"""The periods a question names ("in May", "last spring", "two weeks ago"), for recall.

People ask about their history by time: "what did I say about my knee last spring?",
"how was the flat in March 2025?". Neither list of recall knows what the words mean: the
stored text holds no date, and a month's name matches only the rows that say it. Recall
(core.recall.hybrid) boosts the candidates said within a period the question names.

Only explicit expressions are read, relative to `now` (the time of the question), in
UTC, in English:

- a day: "2025-05-08", "on 8 May 2025", "May 8th" (the latest up to now without a year);
- a month, with or without a year: "in July 2025", "May" (the latest May up to now);
- a season, with or without a year: "in the summer of 2025", "last spring", "this
  winter" (northern seasons; "winter of 2025" is both winters that touch 2025);
- a year: "in 2024"; "last year", "this year";
- "last week", "this week", "last month", "this month", "yesterday", "today";
- "N days / weeks / months / years ago" (N in digits or "a", "one" ... "twelve").

Anything else names no period. A wrong guess costs little: a boost, never a filter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
)  # fmt: skip
_MONTH_ABBREVIATIONS = {m[:3]: i for i, m in enumerate(MONTHS, 1)}
SEASONS = {"spring": (3, 5), "summer": (6, 8), "autumn": (9, 11), "fall": (9, 11)}
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}

_MONTH = r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?" \
    r"|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"  # fmt: skip
_PATTERNS = (
    ("iso", re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<m>\d\d)-(?P<d>\d\d)\b")),
    ("date", re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b"
                        r"(?:,?\s+(?P<year>(?:19|20)\d\d))?")),
    ("date", re.compile(rf"\b{_MONTH}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?!:)"
                        r"(?:,?\s+(?P<year>(?:19|20)\d\d))?")),
    ("month", re.compile(rf"\b(?:in|during|around|of|since|last|this)\s+{_MONTH}\b"
                         r"(?:,?\s+(?:of\s+)?(?P<year>(?:19|20)\d\d))?")),
    ("month", re.compile(rf"\b{_MONTH}\s+(?P<year>(?:19|20)\d\d)\b")),
    ("season", re.compile(r"\b(?:(?P<which>last|this|in|during|the)\s+)?(?:the\s+)?"
                          r"(?P<season>spring|summer|autumn|fall|winter)\b"
                          r"(?:\s+(?:of\s+)?(?P<year>(?:19|20)\d\d))?")),
    ("year", re.compile(r"\b(?:in|during|of|since)\s+(?P<year>(?:19|20)\d\d)\b")),
    ("relative", re.compile(r"\b(?P<which>last|this|past)\s+(?P<unit>week|month|year)\b")),
    ("day", re.compile(r"\b(?P<day>yesterday|today)\b")),
    ("ago", re.compile(r"\b(?P<n>\d{1,2}|an?|one|two|three|four|five|six|seven|eight|nine"
                       r"|ten|eleven|twelve)\s+(?P<unit>day|week|month|year)s?\s+ago\b")),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Period:
    """From `start` (inclusive) to `end` (exclusive)."""

    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end


def periods(question: str, now: datetime) -> list[Period]:
    """Every period `question` names, relative to `now` (see the module docstring)."""
    text = question.lower()
    found: list[Period] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if any(a < match.end() and match.start() < b for a, b in taken):
                continue  # already read by an earlier, more specific pattern
            named = _read(kind, match, now)
            if named:
                taken.append(match.span())
                found += named
    return found


def with_days(question: str, named: Sequence[Period]) -> str:
    """`question` followed by the token of each single day in `named` (`YYYYMMDD`, UTC):
    the `search` column holds the day of each message so (migration 0016), and the
    keyword list then finds a day's messages whatever words they use."""
    days = [f"{p.start:%Y%m%d}" for p in named if p.end - p.start == timedelta(days=1)]
    return " ".join([question, *dict.fromkeys(days)])


def _read(kind: str, m: re.Match[str], now: datetime) -> list[Period]:
    groups = m.groupdict()
    year = int(groups["year"]) if groups.get("year") else None
    if kind in ("iso", "date"):
        month = int(groups["m"]) if kind == "iso" else _MONTH_ABBREVIATIONS[groups["month"][:3]]
        return _day(year, month, int(groups["d"]), now)
    if kind == "month":
        month = _MONTH_ABBREVIATIONS[groups["month"][:3]]
        if year is None:  # the latest such month up to now
            year = now.year if month <= now.month else now.year - 1
        return [_months(year, month, 1)]
    if kind == "season":
        return _season(groups["season"], groups["which"] or "in", year, now)
    if kind == "year" and year is not None:
        return [_months(year, 1, 12)]
    if kind == "relative":
        return [_relative(groups["which"], groups["unit"], now)]
    if kind == "day":
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=1) if groups["day"] == "yesterday" else today
        return [Period(start, start + timedelta(days=1))]
    if kind == "ago":
        n = int(groups["n"]) if groups["n"].isdigit() else _NUMBERS[groups["n"]]
        unit = timedelta(days=_UNIT_DAYS[groups["unit"]])
        return [Period(now - (n + 1) * unit, now - (n - 1) * unit + timedelta(days=1))]
    return []


def _day(year: int | None, month: int, day: int, now: datetime) -> list[Period]:
    """That day (the latest up to now without a year); none if there is no such day."""
    try:
        start = datetime(year or now.year, month, day, tzinfo=UTC)
        if year is None and start > now:
            start = start.replace(year=now.year - 1)
    except ValueError:  # "2025-13-40", "February 30"
        return []
    return [Period(start, start + timedelta(days=1))]


def _months(year: int, first: int, count: int) -> Period:
    """`count` calendar months from `first` of `year` (UTC)."""
    start = datetime(year, first, 1, tzinfo=UTC)
    last = first + count
    end = datetime(year + (last - 1) // 12, (last - 1) % 12 + 1, 1, tzinfo=UTC)
    return Period(start, end)


def _season(name: str, which: str, year: int | None, now: datetime) -> list[Period]:
    if name == "winter":
        if year is not None:  # both winters that touch the year
            return [_months(year - 1, 12, 3), _months(year, 12, 3)]
        starts = [_months(y, 12, 3) for y in (now.year - 2, now.year - 1, now.year)]
        return [_latest(starts, which, now)]
    first, last = SEASONS[name]
    if year is not None:
        return [_months(year, first, last - first + 1)]
    candidates = [_months(y, first, last - first + 1) for y in (now.year - 1, now.year)]
    return [_latest(candidates, which, now)]


def _latest(candidates: list[Period], which: str, now: datetime) -> Period:
    """ "this" season: the one now is in or the latest begun; "last": the latest ended."""
    begun = [p for p in candidates if p.start <= now]
    if which == "last":
        ended = [p for p in begun if p.end <= now]
        return ended[-1] if ended else candidates[0]
    return begun[-1] if begun else candidates[0]


def _relative(which: str, unit: str, now: datetime) -> Period:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        monday = today - timedelta(days=today.weekday())
        start = monday - timedelta(days=7) if which == "last" else monday
        if which == "past":
            return Period(now - timedelta(days=7), now + timedelta(days=1))
        return Period(start, start + timedelta(days=7))
    if unit == "month":
        if which == "past":
            return Period(now - timedelta(days=31), now + timedelta(days=1))
        month = now.month - 1 if which == "last" else now.month
        year = now.year - 1 if month == 0 else now.year
        return _months(year, month or 12, 1)
    if which == "past":
        return Period(now - timedelta(days=366), now + timedelta(days=1))
    return _months(now.year - 1 if which == "last" else now.year, 1, 12)
