"""Replies kept while the database was down: bounded, aged out, tied to their row."""

from __future__ import annotations

from core.unrecorded_replies import UnrecordedReplies

KEY = ("telegram", "chat", "1")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_kept_reply_stays_until_it_is_recorded() -> None:
    kept: UnrecordedReplies[str] = UnrecordedReplies()
    kept.keep(KEY, 7, "the answer")
    assert KEY in kept
    # Taking it does not drop it: a record that fails again must find it next time.
    assert kept.get(KEY, 7) == "the answer"
    assert kept.get(KEY, 7) == "the answer"
    kept.forget(KEY)
    assert KEY not in kept and kept.get(KEY, 7) is None


def test_a_reply_kept_for_another_row_under_the_same_ids_is_dropped() -> None:
    kept: UnrecordedReplies[str] = UnrecordedReplies()
    kept.keep(KEY, 7, "for the erased row")
    assert kept.get(KEY, 8) is None  # the message was stored again as row 8
    assert KEY not in kept


def test_the_oldest_reply_goes_first_when_full() -> None:
    kept: UnrecordedReplies[str] = UnrecordedReplies(at_most=2)
    keys = [("telegram", "chat", str(i)) for i in range(3)]
    for i, key in enumerate(keys):
        kept.keep(key, i, f"reply {i}")
    assert [key in kept for key in keys] == [False, True, True]
    kept.keep(keys[1], 1, "reply 1, again")  # kept again: now the newest
    kept.keep(keys[0], 0, "reply 0")
    assert [key in kept for key in keys] == [True, True, False]


def test_replies_age_out() -> None:
    clock = _Clock()
    kept: UnrecordedReplies[str] = UnrecordedReplies(seconds=60, clock=clock)
    kept.keep(KEY, 7, "the answer")
    clock.now = 60
    assert kept.get(KEY, 7) == "the answer"
    clock.now = 61
    assert KEY not in kept
    assert kept.get(KEY, 7) is None
