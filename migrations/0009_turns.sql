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
