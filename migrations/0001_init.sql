-- onethread schema, version 1.
-- Embeddings are stored as `halfvec` without a fixed dimension so that a change of
-- embedding model (and dimension) needs no table rewrite; the HNSW indexes below are
-- partial indexes for one dimension (384, the default local model). See docs/database.md.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'banned')),
    display_name  text,
    locale        text,
    settings      jsonb NOT NULL DEFAULT '{}'::jsonb,
    ban_notified  boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz
);

CREATE TABLE identities (
    platform          text NOT NULL,
    platform_user_id  text NOT NULL,
    user_id           bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    username          text,
    -- Where the bot can write to this person privately (broadcasts), once known.
    private_chat_id   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, platform_user_id)
);
CREATE INDEX identities_user_id ON identities (user_id);
CREATE INDEX identities_username ON identities (lower(username));

-- Exactly one conversation per user: the primary key is the user id.
CREATE TABLE conversations (
    user_id                     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    summary                     text NOT NULL DEFAULT '',
    summary_version             integer NOT NULL DEFAULT 0,
    summary_through_message_id  bigint,
    message_count               bigint NOT NULL DEFAULT 0,
    tokens_in                   bigint NOT NULL DEFAULT 0,
    tokens_out                  bigint NOT NULL DEFAULT 0,
    persona_overrides           jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_activity_at            timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id              bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role                 text NOT NULL CHECK (role IN ('user', 'assistant')),
    content              text NOT NULL,
    platform             text NOT NULL,
    chat_id              text,
    platform_message_id  text,
    reply_to_id          bigint,
    status               text CHECK (status IN ('pending', 'answered', 'failed')),
    context_snapshot     jsonb,
    tokens_in            integer,
    tokens_out           integer,
    model                text,
    response_ms          integer,
    -- For replies: when the platform accepted it. A reply recorded but never delivered
    -- (the process died in between) is sent again when the update is redelivered.
    delivered_at         timestamptz,
    embedding            halfvec,
    search               tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_platform_message_unique UNIQUE (platform, chat_id, platform_message_id),
    CONSTRAINT messages_user_status CHECK ((role = 'user') = (status IS NOT NULL))
);
-- Keep vectors inline with the row (MAIN, not the default EXTERNAL): an exact scan
-- over a user's rows then never has to detoast. Measured: 7x faster, docs/benchmarks.md.
ALTER TABLE messages ALTER COLUMN embedding SET STORAGE MAIN;
CREATE INDEX messages_user_id_id ON messages (user_id, id DESC);
CREATE INDEX messages_search ON messages USING gin (search);
CREATE INDEX messages_embedding_384 ON messages
    USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)
    WHERE vector_dims(embedding) = 384;

-- Same shape as messages; rows keep their ids when they move here.
CREATE TABLE messages_archive (
    id                   bigint PRIMARY KEY,
    user_id              bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role                 text NOT NULL CHECK (role IN ('user', 'assistant')),
    content              text NOT NULL,
    platform             text NOT NULL,
    chat_id              text,
    platform_message_id  text,
    reply_to_id          bigint,
    status               text CHECK (status IN ('pending', 'answered', 'failed')),
    context_snapshot     jsonb,
    tokens_in            integer,
    tokens_out           integer,
    model                text,
    response_ms          integer,
    delivered_at         timestamptz,
    embedding            halfvec,
    search               tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    created_at           timestamptz NOT NULL,
    archived_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_archive_platform_message_unique
        UNIQUE (platform, chat_id, platform_message_id)
);
ALTER TABLE messages_archive ALTER COLUMN embedding SET STORAGE MAIN;
CREATE INDEX messages_archive_user_id_id ON messages_archive (user_id, id DESC);
CREATE INDEX messages_archive_search ON messages_archive USING gin (search);
CREATE INDEX messages_archive_embedding_384 ON messages_archive
    USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)
    WHERE vector_dims(embedding) = 384;

CREATE TABLE facts (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content             text NOT NULL,
    category            text NOT NULL DEFAULT 'general',
    importance          smallint NOT NULL DEFAULT 5 CHECK (importance BETWEEN 1 AND 10),
    confidence          real NOT NULL DEFAULT 1.0 CHECK (confidence BETWEEN 0 AND 1),
    is_private          boolean NOT NULL DEFAULT false,
    source_message_ids  bigint[] NOT NULL DEFAULT '{}',
    embedding           halfvec,
    search              tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    valid_from          timestamptz NOT NULL DEFAULT now(),
    invalid_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE facts ALTER COLUMN embedding SET STORAGE MAIN;
CREATE INDEX facts_user_id ON facts (user_id, id);
CREATE INDEX facts_search ON facts USING gin (search);
CREATE INDEX facts_embedding_384 ON facts
    USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)
    WHERE vector_dims(embedding) = 384 AND invalid_at IS NULL;

CREATE TABLE conversation_context (
    user_id               bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    insights              jsonb NOT NULL DEFAULT '[]'::jsonb,
    communication_style   text NOT NULL DEFAULT '',
    themes                jsonb NOT NULL DEFAULT '[]'::jsonb,
    last_read_message_id  bigint NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Per-user rate limit (a token bucket in its GCRA form: one "theoretical arrival
-- time" per user), shared by every replica.
CREATE TABLE rate_limits (
    user_id  bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tat      timestamptz NOT NULL
);

-- Short-lived single-use codes: linking identities, confirming erasure.
CREATE TABLE one_time_codes (
    code        text PRIMARY KEY,
    purpose     text NOT NULL CHECK (purpose IN ('link', 'delete')),
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX one_time_codes_user ON one_time_codes (user_id);

-- Who did what. A target user is referenced, not copied, so erasing the user
-- leaves no trace of them here (the reference becomes NULL).
CREATE TABLE admin_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id        bigint REFERENCES users (id) ON DELETE SET NULL,
    action          text NOT NULL,
    target_user_id  bigint REFERENCES users (id) ON DELETE SET NULL,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_audit_at ON admin_audit (at DESC);

CREATE TABLE job_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job          text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    counts       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error        text
);
CREATE INDEX job_runs_job_started ON job_runs (job, started_at DESC);
