-- Per-person ordering of chat turns across replicas, without a connection held while the
-- model writes (core/storage/turns.py, core/turn_order.py).
--
-- `turns` is the queue: one row per stored user message waiting for or being answered,
-- owned by a process (`holder`) that renews `expires_at` while it lives. A crashed
-- process stops renewing, so its rows stop counting once they expire.
CREATE TABLE turns (
    message_id  bigint PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    holder      uuid NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX turns_user_message ON turns (user_id, message_id);
CREATE INDEX turns_holder ON turns (holder);

-- Where the person's queue stands, in the row every store of theirs locks first: the
-- newest message queued, and the newest whose turn ended. A turn may start as its
-- message is stored only when every earlier one has ended.
ALTER TABLE conversations
    ADD COLUMN turns_queued_through bigint,
    ADD COLUMN turns_done_through bigint NOT NULL DEFAULT 0;

-- The lease: at most one turn of a person runs at a time. Taken atomically (INSERT ...
-- ON CONFLICT DO UPDATE ... WHERE expired), by the oldest live turn in the queue.
CREATE TABLE turn_leases (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    message_id  bigint NOT NULL,
    holder      uuid NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX turn_leases_holder ON turn_leases (holder);

-- A command claimed but never finished (a database outage in the middle) runs again when
-- the platform delivers it again.
ALTER TABLE handled_commands ADD COLUMN done_at timestamptz;
