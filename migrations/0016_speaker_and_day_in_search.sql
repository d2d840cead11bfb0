-- Who said a message, and the day it was said, are searchable with it, in the language
-- of the person (issue #15, parts 3 and 5; docs/recall.md "What is stored with each
-- message").
--
-- `speaker`: the name of who said it, as it was when it was stored: the person's display
-- name for their own messages (their `users` row, never anyone else's), the assistant's
-- name for replies; NULL when not known. Questions name people ("When did Maya ...?"),
-- and in a shared chat the name is what tells speakers apart.
--
-- `search_config`: the text search configuration of the person's language when the row
-- was stored (core.storage.messages.text_search_config: stemming and stop words of that
-- language, English while it is unknown, word for word for a language PostgreSQL has no
-- stemmer for); the rows stored so far were English. Keyword recall reads a question
-- in the configuration of the person's newest message.
--
-- `search` of `messages` then holds the speaker's name, the text, and the UTC day as one
-- token `YYYYMMDD` (PostgreSQL's English parser splits `2025-05-08` into three number
-- tokens; `20250508` stays whole): recall adds the token of a day the question names
-- (core.recall.when.with_days). The embedding stays the text alone (measured).
--
-- `ALTER COLUMN ... SET EXPRESSION` needs PostgreSQL 17, and the service supports 15 and
-- newer (docs/database.md): the generated columns are dropped and added again, which
-- rewrites `messages` and `facts` once each under an exclusive lock (seconds per million
-- rows).
ALTER TABLE messages ADD COLUMN speaker text,
    ADD COLUMN search_config regconfig NOT NULL DEFAULT 'english';
ALTER TABLE messages_archive ADD COLUMN speaker text,
    ADD COLUMN search_config regconfig NOT NULL DEFAULT 'english';
ALTER TABLE facts ADD COLUMN search_config regconfig NOT NULL DEFAULT 'english';

UPDATE messages m SET speaker = u.display_name
FROM users u WHERE u.id = m.user_id AND m.role = 'user' AND u.display_name IS NOT NULL;
UPDATE messages_archive m SET speaker = u.display_name
FROM users u WHERE u.id = m.user_id AND m.role = 'user' AND u.display_name IS NOT NULL;

ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector(search_config, coalesce(speaker, '') || ' ' || content || ' '
        || (extract(year FROM created_at AT TIME ZONE 'UTC')::integer * 10000
            + extract(month FROM created_at AT TIME ZONE 'UTC')::integer * 100
            + extract(day FROM created_at AT TIME ZONE 'UTC')::integer)::text)
) STORED;

-- The archive's `search` is a plain column copied from the live row (migration 0005):
-- the rows already archived get the same value a live row now has.
UPDATE messages_archive SET search =
    to_tsvector(search_config, coalesce(speaker, '') || ' ' || content || ' '
        || (extract(year FROM created_at AT TIME ZONE 'UTC')::integer * 10000
            + extract(month FROM created_at AT TIME ZONE 'UTC')::integer * 100
            + extract(day FROM created_at AT TIME ZONE 'UTC')::integer)::text);

ALTER TABLE facts DROP COLUMN search;
ALTER TABLE facts ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector(search_config, content)) STORED;
