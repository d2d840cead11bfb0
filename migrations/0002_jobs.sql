-- Scheduled jobs (docs/jobs.md): retention by age, and the cursor of re-embedding.

-- Retention deletes archived messages older than ARCHIVE_RETENTION_DAYS, oldest first,
-- in batches; without this index every batch would scan the whole archive.
CREATE INDEX messages_archive_created_at ON messages_archive (created_at);

-- How far `python -m bot reembed` got, per table, for one embedding model. A run that
-- is interrupted resumes after `last_id`; a run for another model or dimension starts
-- over. Holds no user data (ids only), so nothing here needs to cascade from `users`.
CREATE TABLE reembed_progress (
    source        text PRIMARY KEY CHECK (source IN ('facts', 'messages', 'archive')),
    model         text NOT NULL,
    dimensions    integer NOT NULL,
    last_id       bigint NOT NULL DEFAULT 0,
    done          bigint NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
