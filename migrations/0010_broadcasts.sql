-- Broadcasts (/broadcast): queued by an admin's command, sent in the background by the
-- `broadcast` job (docs/jobs.md, "Broadcasts").
--
-- Progress is a cursor, not a row per recipient: recipients are visited in user id
-- order, and `last_user_id` is the last one handled, written with the counts in one
-- statement after each recipient. A sender that dies resumes after the cursor, so
-- nobody is skipped, and only the recipient in flight at the crash (sent, not yet
-- written down) can get the text twice. Queueing writes one row, not one per user.
--
-- `platforms` are those the queueing process could reach: only a process that reaches
-- all of them sends it, and only to private chats there. `total` is the number of
-- recipients counted when it was queued (people joining or leaving meanwhile change
-- what is sent, not this estimate). The admin's text is their data: erasing them
-- deletes their broadcasts, and a sender in progress stops. `source` is the command
-- message that queued it (platform, chat, message id): the same command delivered again
-- after an outage cut it short queues nothing more.
CREATE TABLE broadcasts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    text          text NOT NULL,
    admin_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platforms     text[] NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'done', 'cancelled')),
    last_user_id  bigint NOT NULL DEFAULT 0,
    sent          integer NOT NULL DEFAULT 0,
    failed        integer NOT NULL DEFAULT 0,
    total         integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    source        text UNIQUE
);
CREATE INDEX broadcasts_admin_id ON broadcasts (admin_id);
