-- A message longer than the local embedder's window (256 tokens) is also kept as
-- passages of at most 128 tokens (cut at paragraph and sentence ends), each with its
-- own vector: its one `embedding` averages all of it, so a question about one part of a
-- long reply finds that part's passage rather than the diluted whole (docs/recall.md
-- "Long messages"). Written off the turn by the `long_messages` job
-- (core/jobs/long_messages.py, core/storage/message_passages.py).
--
-- `message_id` names a message, live or archived. No foreign key to `messages`: the
-- archive job moves a message to `messages_archive` keeping its id, and its passages
-- follow the id. What deletes messages for good deletes their passages in the same
-- transaction (`/forget all`, archive retention); `/delete_me` cascades from `users`; a
-- merge moves them with the messages. Vectors of the same model as the
-- message's `embedding`: whatever rewrites that (`reembed`, a transcript replacing a
-- voice note's text) deletes them, and the job cuts the message again.
CREATE TABLE message_passages (
    message_id  bigint NOT NULL,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position    smallint NOT NULL,
    embedding   halfvec NOT NULL,
    PRIMARY KEY (message_id, position)
);
-- Inline, as for messages: an exact scan of a user's passages never detoasts.
ALTER TABLE message_passages ALTER COLUMN embedding SET STORAGE MAIN;
CREATE INDEX message_passages_user_id ON message_passages (user_id);

-- How many passages the job stored for the message: NULL until it looked at it, 0 when
-- the message is not that long.
ALTER TABLE messages ADD COLUMN passages smallint;
ALTER TABLE messages_archive ADD COLUMN passages smallint;

-- The job's work: texts that may be long, not looked at yet. A text of at most 250
-- characters has at most 250 tokens (every token covers at least one character), so
-- short ones never enter these indexes. The predicate is `LONG_TEXT_MIN_CHARS` in
-- core/storage/message_passages.py, whose statement repeats it to use them.
CREATE INDEX messages_unread_for_passages ON messages (id)
    WHERE passages IS NULL AND length(content) > 250;
CREATE INDEX messages_archive_unread_for_passages ON messages_archive (id)
    WHERE passages IS NULL AND length(content) > 250;
