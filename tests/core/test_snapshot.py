"""`ContextSnapshot`: what a reply was built from, as stored and as `/why` reads it."""

from __future__ import annotations

from core.snapshot import AttachmentUse, ContextSnapshot, DocumentRef, RecalledRef


def test_a_snapshot_survives_its_json_and_gains_the_answer() -> None:
    built = ContextSnapshot(
        summary_version=3,
        fact_ids=(7, 9),
        recalled=(
            RecalledRef("facts", 7, 0.1234567, None),
            RecalledRef("messages", 4, 0.5, 0.87654),
        ),
        window_ids=(10, 11),
        shared_chat=True,
        tokens={"persona": 12, "prompt": 80, "budget": 6000},
        attachments=(AttachmentUse(11, "voice", "transcript"),),
    )
    answered = built.answered(model="m", tokens_in=80, tokens_out=5, timings_ms={"llm_ms": 900})
    assert built.model is None and answered.model == "m"
    read = ContextSnapshot.from_json(answered.to_json())
    assert read.recalled == (
        RecalledRef("facts", 7, 0.123457, None),
        RecalledRef("messages", 4, 0.5, 0.8765),
    )
    assert (read.fact_ids, read.window_ids, read.shared_chat) == ((7, 9), (10, 11), True)
    assert (read.model, read.tokens_in, read.tokens_out) == ("m", 80, 5)
    assert dict(read.tokens) == {"persona": 12, "prompt": 80, "budget": 6000}
    assert dict(read.timings_ms) == {"llm_ms": 900}
    assert read.attachments == (AttachmentUse(11, "voice", "transcript"),)


def test_an_older_or_partial_snapshot_reads_as_empty_where_it_says_nothing() -> None:
    read = ContextSnapshot.from_json({"fact_ids": [1], "query": "never read"})
    assert read.fact_ids == (1,)
    assert (read.recalled, read.window_ids, read.model, dict(read.timings_ms)) == ((), (), None, {})
    assert read.attachments == ()


def test_the_document_passages_used_survive_the_json() -> None:
    built = ContextSnapshot(
        summary_version=0,
        fact_ids=(),
        recalled=(),
        window_ids=(),
        shared_chat=False,
        tokens={"documents": 40},
        documents=(DocumentRef(chunk_id=31, document_id=3, similarity=0.612345),),
    )
    read = ContextSnapshot.from_json(built.to_json())
    assert read.documents == (DocumentRef(31, 3, 0.6123),)
    assert ContextSnapshot.from_json({}).documents == ()
