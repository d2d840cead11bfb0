"""Assemble the model's prompt for one user message, within a token budget.

Sections, in priority order (higher ones are never squeezed out by lower ones):
1. persona (system prompt, with what the person asked for that applies in this chat:
   `core.persona`), what the memory job learned
   about the person (communication style, themes, insights), and the current message;
2. the rolling summary of older conversation (capped at SUMMARY_SHARE of the budget);
3. facts still true about the user, most important first (capped at FACTS_SHARE);
4. recalled items: hybrid vector + full-text recall over older messages and facts that
   are not already in the prompt (capped at RECALL_SHARE);
5. passages of the person's documents about the message, each naming its document
   (capped at DOCUMENTS_SHARE; core/documents/);
6. the recent window, newest first, with whatever budget is left.

What a reply may draw on depends on where it is written (docs/security.md, "Between
chats"). In the person's private chat: all of the above. In a shared chat (group,
server channel): the turn's state and recall are read for that chat alone (its own
window and messages, facts that are not private), and the summary and profile are left
out, as both are written from every chat and may repeat what was said in private. With
memory off (`/memory off`) the prompt holds the persona and the recent window only.
Documents follow the rule of messages: the engine recalls, for a shared chat, only the
documents sent in that chat.

The result carries a snapshot of what was used, stored with the reply (`/why`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.persona import Persona
from core.models import Fact, MemoryContext, Message, MessageRole, MessageStatus
from core.persona import Overrides, system_prompt
from core.recall.hybrid import RecalledItem
from core.snapshot import ContextSnapshot, DocumentRef, RecalledRef
from core.storage.documents import ChunkHit
from core.storage.turns import TurnState
from core.tokens import TOKENS_PER_MESSAGE, TOKENS_REPLY_PRIMING, TokenCounter

SUMMARY_SHARE = 0.2
FACTS_SHARE = 0.2
RECALL_SHARE = 0.2
DOCUMENTS_SHARE = 0.15
# Recent messages always kept, even if the budget is exceeded, so the model sees the
# message it answers and the turn before it.
MIN_RECENT = 2
# At most this many themes and insights go into the prompt.
PROFILE_ITEMS = 5
# The system text: sections joined by a blank line, each list a header and its lines.
SECTION_SEPARATOR = "\n\n"
FACTS_HEADER = "What you know about this person:"
SUMMARY_HEADER = "Summary of your earlier conversation:"
RECALL_HEADER = "Possibly relevant from earlier (may be outdated):"
DOCUMENTS_HEADER = "From documents this person sent you (say which one when you use it):"
FACT_PREFIX = "- "


@dataclass(frozen=True, slots=True)
class AssembledContext:
    messages: list[dict[str, Any]]
    snapshot: ContextSnapshot
    prompt_tokens: int
    failed_ids: tuple[int, ...] = field(default_factory=tuple)
    """Earlier messages in the window whose answer failed: the reply answers them too."""


@dataclass(frozen=True, slots=True)
class ContextLimits:
    token_budget: int
    recent_messages: int
    facts_max: int
    recall_top_k: int


def _line_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%d")


def _truncate_to(tokens: TokenCounter, text: str, budget: int) -> str:
    if tokens.count(text) <= budget:
        return text
    # Keep the end of a summary: it is the most recent part.
    words = text.split()
    low, high = 0, len(words)
    while low < high:
        middle = (low + high) // 2
        if tokens.count(" ".join(words[middle:])) <= budget:
            high = middle
        else:
            low = middle + 1
    return "… " + " ".join(words[low:])


def _profile_text(memory: MemoryContext | None) -> str:
    """What the memory job learned about this person and how to talk with them."""
    if memory is None:
        return ""
    parts = []
    if memory.communication_style.strip():
        parts.append(f"How this person likes to talk: {memory.communication_style.strip()}")
    themes = [str(t) for t in memory.themes if str(t).strip()][:PROFILE_ITEMS]
    if themes:
        parts.append("Themes they often come back to: " + ", ".join(themes))
    insights = [str(i) for i in memory.insights if str(i).strip()][:PROFILE_ITEMS]
    if insights:
        parts.append("Insights:\n" + "\n".join(f"- {i}" for i in insights))
    return "\n".join(parts)


class ContextAssembler:
    """Builds prompts; reads nothing itself (the engine hands it the turn's state and
    what recall found)."""

    def __init__(self, *, tokens: TokenCounter, persona: Persona, limits: ContextLimits) -> None:
        self._tokens = tokens
        self._persona = persona
        self._limits = limits

    @property
    def limits(self) -> ContextLimits:
        return self._limits

    def build(
        self,
        current: Message,
        state: TurnState,
        recalled: Sequence[RecalledItem],
        *,
        shared_chat: bool,
        documents: Sequence[ChunkHit] = (),
    ) -> AssembledContext:
        """The prompt answering `current` from the turn's state and the items recall
        found for it (best first; those already in the prompt are skipped), and its
        snapshot. The state, recall and `documents` (passages of the person's
        documents, best first) were read for the chat (`shared_chat`); what else a
        shared chat or memory off leaves out is left out here."""
        conversation = state.conversation
        budget = self._limits.token_budget
        overrides = Overrides.read(conversation.persona_overrides)
        persona = system_prompt(self._persona, overrides, shared_chat=shared_chat)
        used = {"persona": self._tokens.count(persona)}
        remembering = conversation.memory_off_since is None
        everything = remembering and not shared_chat

        profile = _profile_text(state.memory) if everything else ""
        used["profile"] = self._tokens.count(profile) if profile else 0

        recent = state.recent

        summary = conversation.summary.strip() if everything else ""
        if summary:
            summary = _truncate_to(self._tokens, summary, int(budget * SUMMARY_SHARE))
        used["summary"] = self._tokens.count(summary) if summary else 0

        kept_facts: list[Fact] = []
        facts_budget = int(budget * FACTS_SHARE)
        used["facts"] = 0
        for fact in state.facts if remembering else ():
            cost = self._line_tokens(FACT_PREFIX, fact.content)
            if used["facts"] + cost > facts_budget:
                break
            kept_facts.append(fact)
            used["facts"] += cost

        fact_ids = {f.id for f in kept_facts}
        kept_recall: list[RecalledItem] = []
        recall_budget = int(budget * RECALL_SHARE)
        used["recall"] = 0
        window_ids = {m.id for m in recent}
        for item in recalled if remembering else ():
            if (item.source == "facts" and item.id in fact_ids) or (
                item.source == "messages" and item.id in window_ids
            ):
                continue
            cost = self._line_tokens(_recalled_prefix(item), item.content)
            if used["recall"] + cost > recall_budget:
                continue
            kept_recall.append(item)
            used["recall"] += cost

        kept_documents: list[ChunkHit] = []
        documents_budget = int(budget * DOCUMENTS_SHARE)
        used["documents"] = 0
        for hit in documents if remembering else ():
            cost = self._line_tokens(_document_prefix(hit), hit.content)
            if used["documents"] + cost > documents_budget:
                continue
            kept_documents.append(hit)
            used["documents"] += cost

        sections = [(persona, used["persona"])]
        if profile:
            sections.append((profile, used["profile"]))
        if kept_facts:
            lines = "".join(f"\n{FACT_PREFIX}{fact.content}" for fact in kept_facts)
            sections.append(self._section(FACTS_HEADER, lines, used["facts"]))
        if summary:
            sections.append(self._section(SUMMARY_HEADER, f"\n{summary}", used["summary"] + 1))
        if kept_recall:
            lines = "".join(f"\n{_recalled_prefix(i)}{i.content}" for i in kept_recall)
            sections.append(self._section(RECALL_HEADER, lines, used["recall"]))
        if kept_documents:
            lines = "".join(f"\n{_document_prefix(h)}{h.content}" for h in kept_documents)
            sections.append(self._section(DOCUMENTS_HEADER, lines, used["documents"]))
        system = SECTION_SEPARATOR.join(text for text, _ in sections)
        # The sum of what each part was counted at, not a count of the whole text: the
        # system text is new every turn, and encoding it again was a tenth of the turn's
        # CPU. Parts meet at newlines, where BPE tokens hardly merge, so the sum is within
        # a few tokens of an exact count, rather over than under (tests/core/test_engine.py,
        # test_prompt_fits_the_token_budget_and_its_count_is_right).
        system_tokens = (
            TOKENS_PER_MESSAGE
            + self._tokens.count("system")
            + sum(tokens for _, tokens in sections)
            + self._tokens.count(SECTION_SEPARATOR) * (len(sections) - 1)
        )
        remaining = budget - system_tokens
        window: list[Message] = []
        used["recent"] = 0
        for message in reversed(recent):
            cost = (
                TOKENS_PER_MESSAGE
                + self._tokens.count(message.role.value)
                + self._tokens.count(message.content)
            )
            if len(window) >= MIN_RECENT and used["recent"] + cost > remaining:
                break
            window.append(message)
            used["recent"] += cost
        window.reverse()

        prompt = [{"role": "system", "content": system}] + [
            {"role": m.role.value, "content": m.content} for m in window
        ]
        prompt_tokens = system_tokens + used["recent"] + TOKENS_REPLY_PRIMING
        snapshot = ContextSnapshot(
            summary_version=conversation.summary_version,
            fact_ids=tuple(f.id for f in kept_facts),
            recalled=tuple(
                RecalledRef(item.source.value, item.id, item.score, item.similarity)
                for item in kept_recall
            ),
            window_ids=tuple(m.id for m in window),
            shared_chat=shared_chat,
            documents=tuple(DocumentRef(h.id, h.document_id, h.similarity) for h in kept_documents),
            tokens={**used, "prompt": prompt_tokens, "budget": budget},
        )
        failed = tuple(m.id for m in window if m.status is MessageStatus.FAILED)
        return AssembledContext(prompt, snapshot, prompt_tokens, failed)

    def _line_tokens(self, prefix: str, content: str) -> int:
        """Tokens of one list line of the system text: newline, prefix, content. The
        prefix's trailing space is counted with the content, as BPE splits them: joined
        to a first word, a token of its own before a digit."""
        return 1 + self._tokens.count(prefix.rstrip(" ")) + self._tokens.count(" " + content)

    def _section(self, header: str, lines: str, lines_tokens: int) -> tuple[str, int]:
        # The header's colon and the first line's newline are one token (":\n").
        return header + lines, self._tokens.count(header) + lines_tokens - 1


def _recalled_prefix(item: RecalledItem) -> str:
    if item.source == "facts":
        return f"- [{_line_date(item.created_at)}] (noted) "
    speaker = "You" if item.role == MessageRole.ASSISTANT.value else "They"
    return f"- [{_line_date(item.created_at)}] {speaker}: "


def _document_prefix(hit: ChunkHit) -> str:
    """`- from "report.pdf", page 3: ` (or the Markdown heading it is under)."""
    where = f'"{hit.filename}"'
    if hit.page is not None:
        where += f", page {hit.page}"
    elif hit.heading:
        where += f', section "{hit.heading}"'
    return f"- from {where}: "
