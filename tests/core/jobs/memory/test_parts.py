"""The pure parts of the memory job: reading the model's answer, bounding the summary,
merging repeats within a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from core.jobs.memory.extraction import Candidate, build_messages, parse_update
from core.jobs.memory.reconciliation import merge_repeats
from core.jobs.memory.summary import bound_summary
from core.models import MessageRole
from core.storage.memory_store import MemoryState, UnreadMessage, lock_key

T0 = datetime(2025, 3, 14, 18, 5, tzinfo=UTC)
STATE = MemoryState(1, 0, "Old summary.", 1, ["old insight"], "terse", ["tea"])
# Said in a group: whether a fact is private is then the model's to say.
MESSAGES = [
    UnreadMessage(10, MessageRole.USER, "I fly to Rome tomorrow", T0, shared_chat=True),
    UnreadMessage(
        11, MessageRole.ASSISTANT, "x" * 2000, T0 + timedelta(minutes=1), shared_chat=True
    ),
    UnreadMessage(
        12, MessageRole.USER, "and back on Monday", T0 + timedelta(days=1), shared_chat=True
    ),
]


def test_the_prompt_dates_every_message_and_shortens_replies() -> None:
    system, user = build_messages(STATE, MESSAGES, summary_max_chars=123)
    assert "at most 123" in system["content"]
    assert "[#10, 2025-03-14 18:05 UTC, Friday] user: I fly to Rome tomorrow" in user["content"]
    assert "[#12, 2025-03-15 18:05 UTC, Saturday] user:" in user["content"]
    assert "x" * 601 not in user["content"]
    assert "Old summary." in user["content"]


def test_answers_are_checked_and_clamped() -> None:
    answer = {
        "facts": [
            {
                "content": "  Flies to   Rome on 2025-03-15 ",
                "category": "EVENT",
                "importance": 42,
                "is_private": "yes",
                "confidence": -3,
                "source_message_ids": [10, 99, True],
            },
            {"content": "No sources given", "importance": 2.6, "confidence": float("nan")},
            {"content": 5},
            None,
        ],
        "summary": "  New summary.  ",
        "insights": ["a", "A", " b ", 3],
        "communication_style": "",
        "themes": None,
    }
    update = parse_update(answer, STATE, MESSAGES)
    first, second = update.facts
    assert first == Candidate(
        content="Flies to Rome on 2025-03-15",
        category="event",
        importance=10,
        is_private=False,
        confidence=0.0,
        source_message_ids=(10,),
        said_at=T0,
    )
    # Without known sources, a fact is credited to the user's messages of the batch.
    assert second.source_message_ids == (10, 12)
    assert second.said_at == T0 + timedelta(days=1)
    assert (second.importance, second.confidence) == (3, 0.8)
    assert update.summary == "New summary."
    assert update.insights == ["a", "b"]
    assert update.communication_style == "terse"  # empty: kept
    assert update.themes == ["tea"]  # not a list: kept


def test_a_fact_from_a_private_chat_message_is_private() -> None:
    private = UnreadMessage(13, MessageRole.USER, "I sleep badly", T0 + timedelta(days=2))
    messages = [*MESSAGES, private]
    answer = {
        "facts": [
            {"content": "Flies to Rome", "source_message_ids": [10]},
            {"content": "Sleeps badly", "source_message_ids": [12, 13]},
            {"content": "Travels a lot"},  # credited to every user message, 13 included
            {"content": "Owes money", "is_private": True, "source_message_ids": [10]},
        ]
    }
    facts = parse_update(answer, STATE, messages).facts
    assert [(f.content, f.is_private) for f in facts] == [
        ("Flies to Rome", False),
        ("Sleeps badly", True),
        ("Travels a lot", True),
        ("Owes money", True),
    ]


def test_a_summary_is_bounded_keeping_its_end_at_a_sentence() -> None:
    text = "First sentence here. Second one follows. Third and last."
    assert bound_summary(text, 100) == text
    assert bound_summary(text, 40) == "Second one follows. Third and last."
    assert bound_summary(text, 20) == "Third and last."
    assert bound_summary("word " * 50, 23).split() == ["word"] * 4
    assert len(bound_summary("x" * 500, 100)) == 100


def test_repeats_within_a_batch_are_merged() -> None:
    a, b = np.eye(2, dtype=np.float32)
    one = Candidate("Likes tea", "general", 3, False, 0.5, (1,), T0)
    again = Candidate("Likes tea", "general", 6, True, 0.9, (4,), T0 + timedelta(hours=1))
    other = Candidate("Has a cat", "general", 5, False, 1.0, (2,), T0)
    merged = merge_repeats([one, other, again], [a, b, a], threshold=0.9)
    assert [c.content for c, _ in merged] == ["Likes tea", "Has a cat"]
    tea = merged[0][0]
    assert (tea.importance, tea.is_private, tea.confidence) == (6, True, 0.9)
    assert tea.source_message_ids == (1, 4)
    assert tea.said_at == T0 + timedelta(hours=1)


def test_lock_keys_fit_in_int4() -> None:
    for user_id in (1, 2**31 - 1, 2**31, 2**32 + 5, 2**62):
        assert -(2**31) <= lock_key(user_id) < 2**31
    assert lock_key(1) != lock_key(2)
