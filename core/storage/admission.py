"""Who wrote a message, and whether it is let in: one statement per message.

The statement resolves the identity, refuses a banned user, takes a rate-limit token
(the token bucket of `core.storage.rate_limits`, in its GCRA form) and stamps "last
seen", so the common case costs one round trip. A first message creates its user
first (`UserRepository.get_or_create`) and is then admitted the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.models import Platform, User
from core.storage.database import Connection, Database
from core.storage.rate_limits import TokenBucket
from core.storage.users import LAST_SEEN_RESOLUTION, UserRepository, user_from_row

# $1 platform, $2 platform user id, $3 private chat to remember (or NULL), $4 display
# name (or NULL), $5 whether the message itself is admissible (not too long), $6 whether
# the configuration makes this identity an admin, $7 whether a banned user may pass (the
# command lets them), $8 now, $9 and $10 the token bucket's interval and window, $11 the
# identity's username as the platform shows it now (NULL: it has none), $12 the person's
# language as the platform tells it (NULL: it does not say).
# - `remembered`: the identity's private chat and username, written only when changed;
# - `known`: the identity's user; `banned_out`: banned, neither an admin nor exempt;
# - `bucket`: for an admissible message of anyone but an admin or a refused user, either
#   the token (one emission interval added to max(TAT, now), allowed while the TAT stays
#   within the window; the row lock serialises one user's messages), which ends a
#   refused stretch, or the first refusal of a stretch, which starts one (`refused`);
#   a later refusal of the same stretch writes nothing and returns no row;
# - a message let in stamps "last seen" when the stamp is stale or the name or language new (the
#   row returned is the user as before that stamp).
_ADMIT = f"""
WITH remembered AS (
    UPDATE identities
    SET private_chat_id = coalesce($3, private_chat_id), username = $11::text
    WHERE platform = $1 AND platform_user_id = $2
      AND (($3::text IS NOT NULL AND private_chat_id IS DISTINCT FROM $3)
           OR username IS DISTINCT FROM $11)
), known AS (
    SELECT u.id, u.role, u.status, u.display_name, u.locale, u.settings, u.ban_notified,
           u.created_at, u.last_seen_at, u.language,
           (u.role = 'admin' OR $6::boolean) AS admin,
           (u.status = 'banned' AND u.role <> 'admin' AND NOT $6 AND NOT $7::boolean)
               AS banned_out
    FROM identities i JOIN users u ON u.id = i.user_id
    WHERE i.platform = $1 AND i.platform_user_id = $2
), bucket AS (
    INSERT INTO rate_limits AS r (user_id, tat)
    SELECT id, $8::timestamptz + $9::interval FROM known
    WHERE $5::boolean AND NOT admin AND NOT banned_out
    ON CONFLICT (user_id) DO UPDATE
    SET tat = CASE WHEN greatest(r.tat, $8) + $9 - $8 <= $10::interval
                   THEN greatest(r.tat, $8) + $9 ELSE r.tat END,
        refused = NOT (greatest(r.tat, $8) + $9 - $8 <= $10::interval)
    WHERE greatest(r.tat, $8) + $9 - $8 <= $10::interval OR NOT r.refused
    RETURNING r.refused
), let_in AS (
    SELECT id FROM known WHERE $5 AND NOT banned_out
      AND (admin OR EXISTS (SELECT FROM bucket WHERE NOT refused))
), stamped AS (
    UPDATE users s SET last_seen_at = now(), display_name = coalesce($4, s.display_name),
        locale = coalesce($12, s.locale)
    FROM let_in l WHERE s.id = l.id
      AND (s.last_seen_at IS NULL
           OR NOT (s.last_seen_at > $8::timestamptz - interval
                   '{LAST_SEEN_RESOLUTION.total_seconds():g} seconds'
                   AND s.last_seen_at < $8 + interval
                   '{LAST_SEEN_RESOLUTION.total_seconds():g} seconds')
           OR ($4::text IS NOT NULL AND s.display_name IS DISTINCT FROM $4)
           OR ($12::text IS NOT NULL AND s.locale IS DISTINCT FROM $12))
)
SELECT k.*,
       CASE WHEN $5 AND NOT k.admin AND NOT k.banned_out
            THEN EXISTS (SELECT FROM bucket WHERE NOT refused) END AS token,
       EXISTS (SELECT FROM bucket WHERE refused) AS first_refusal
FROM known k
"""


@dataclass(frozen=True, slots=True)
class Admission:
    """Who wrote a message and whether it is let in (`Admissions.admit`)."""

    user: User
    """As before this message (its "last seen" stamp is not reflected)."""
    created: bool
    banned: bool
    """Refused: banned, and neither an admin nor running a command a banned user may."""
    rate_limited: bool
    """Refused: no token left (never for admins or refused messages)."""
    first_refusal: bool
    """`rate_limited`, and the first such refusal since this person's last message was
    let in: the one message of a refused stretch whose refusal the person is told
    about (the rest are dropped quietly, or a fast sender would get a notice each)."""


class Admissions:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._users = UserRepository(db)

    async def admit(
        self,
        platform: Platform,
        platform_user_id: str,
        *,
        bucket: TokenBucket,
        clock: Callable[[], datetime],
        admissible: bool,
        config_admin: bool = False,
        ban_exempt: bool = False,
        username: str | None = None,
        display_name: str | None = None,
        private_chat_id: str | None = None,
        language: str | None = None,
        conn: Connection | None = None,
    ) -> Admission:
        """Resolve the identity (created on first sight, as `get_or_create`) and decide
        in the same statement, at `clock()`, whether its message is let in: a banned
        user is refused unless an admin (role or `config_admin`) or `ban_exempt`; an
        admissible message (the caller's own checks passed) of anyone else but an admin
        takes a rate-limit token; a message let in stamps "last seen" (at most once per
        `LAST_SEEN_RESOLUTION`, or on a new `display_name` or language).

        `username` is the identity's username as the platform shows it with this
        message (None: it has none now), stored when it differs from the stored one, so
        that `/ban @name` finds the person who has that name today; `language` (None:
        not told) is kept as the person's `locale` when it changed. Nothing is written
        when nothing changed."""

        def args() -> tuple[Any, ...]:
            # The time is read just before each try: a first message waits for its user
            # to be created, and its token must not be taken at an earlier time than
            # those of the messages that did not wait.
            return (
                platform.value,
                platform_user_id,
                private_chat_id,
                display_name,
                admissible,
                config_admin,
                ban_exempt,
                clock(),
                bucket.interval,
                bucket.window,
                username,
                language,
            )

        created = False
        async with self._db.connection(conn) as c:
            row = await c.fetchrow(_ADMIT, *args())
            if row is None:
                _, created = await self._users.get_or_create(
                    platform,
                    platform_user_id,
                    username=username,
                    display_name=display_name,
                    private_chat_id=private_chat_id,
                    conn=c,
                )
                row = await c.fetchrow(_ADMIT, *args())
        assert row is not None
        return Admission(
            user=user_from_row(row),
            created=created,
            banned=row["banned_out"],
            rate_limited=row["token"] is False,
            first_refusal=row["first_refusal"],
        )
