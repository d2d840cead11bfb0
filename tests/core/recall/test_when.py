from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.recall.when import Period, periods, with_days

NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)  # a Sunday


def _days(question: str) -> list[tuple[date, date]]:
    return [(p.start.date(), p.end.date()) for p in periods(question, NOW)]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What did Maya say about her knee in July 2025?", [("2025-07-01", "2025-08-01")]),
        ("how was the flat in March?", [("2026-03-01", "2026-04-01")]),
        ("what happened in June?", [("2025-06-01", "2025-07-01")]),  # the latest June
        ("anything from sept 2025", [("2025-09-01", "2025-10-01")]),
        ("How was it in the summer of 2025?", [("2025-06-01", "2025-09-01")]),
        ("what did I say last spring", [("2025-03-01", "2025-06-01")]),  # spring 2026 not over
        ("this spring", [("2026-03-01", "2026-06-01")]),
        ("last winter", [("2025-12-01", "2026-03-01")]),
        ("the winter of 2026", [("2025-12-01", "2026-03-01"), ("2026-12-01", "2027-03-01")]),
        ("in 2024", [("2024-01-01", "2025-01-01")]),
        ("last year", [("2025-01-01", "2026-01-01")]),
        ("last month", [("2026-04-01", "2026-05-01")]),
        ("last week", [("2026-04-27", "2026-05-04")]),
        ("yesterday", [("2026-05-09", "2026-05-10")]),
        ("two weeks ago", [("2026-04-19", "2026-05-04")]),
        ("what did I say on 2025-05-08?", [("2025-05-08", "2025-05-09")]),
        ("on 8 May 2025", [("2025-05-08", "2025-05-09")]),
        ("the 3rd of March", [("2026-03-03", "2026-03-04")]),
        ("on June 12th", [("2025-06-12", "2025-06-13")]),  # the latest June 12
        ("on 2025-02-30", []),
        ("What is the name of my dog?", []),
        ("I may come by, market day", []),
    ],
)
def test_the_periods_a_question_names(question: str, expected: list[tuple[str, str]]) -> None:
    assert _days(question) == [(date.fromisoformat(a), date.fromisoformat(b)) for a, b in expected]


def test_a_period_holds_its_start_but_not_its_end() -> None:
    [may] = periods("in May 2026", NOW)
    assert datetime(2026, 5, 1, tzinfo=UTC) in may
    assert datetime(2026, 5, 31, 23, 59, tzinfo=UTC) in may
    assert datetime(2026, 6, 1, tzinfo=UTC) not in may
    assert isinstance(may, Period)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what did I say on 2025-05-08 and on 8 May 2025?", " 20250508"),
        ("yesterday or 2026-05-01?", " 20260501 20260509"),
        ("in May 2026", ""),  # a month is no day: boosted by date, not searched
        ("What is the name of my dog?", ""),
    ],
)
def test_the_days_a_question_names_become_search_tokens(question: str, expected: str) -> None:
    assert with_days(question, periods(question, NOW)) == question + expected
