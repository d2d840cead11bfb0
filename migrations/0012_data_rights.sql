-- Export, erasure and the rate-limit notice (docs/security.md, "Export", "Erasure",
-- "Audit").

-- A person's rate-limit stretch: true from the first message the bucket refused until
-- one is let in again. The admission statement sets it with the refusal it tells the
-- person about, so each stretch gets one notice, however many messages it refuses.
ALTER TABLE rate_limits ADD COLUMN refused boolean NOT NULL DEFAULT false;

-- `/export` runs one at a time per person, on whichever replica: a running export holds
-- its person's row (`holder` is that run) until it ends, or until `expires_at` when
-- the process running it died.
CREATE TABLE export_runs (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    holder      uuid NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Audit details no longer copy the text of an admin's lookup (`/user @name` found no
-- one): it could name a person who arrives, and erases themselves, later. What kind of
-- lookup it was is kept.
UPDATE admin_audit
SET details = jsonb_set(details, '{query}', to_jsonb(
    CASE WHEN details ->> 'query' ~ '^\d+$' THEN 'id'
         WHEN details ->> 'query' LIKE '@%' THEN 'username'
         ELSE 'identity' END))
WHERE details ? 'query';

-- Job error texts name no user any more: "user 42: LLMError" is stored as
-- "a user: LLMError" (the log keeps the id, core/jobs/registry.py).
UPDATE job_runs SET error = regexp_replace(error, '\muser \d+', 'a user', 'g')
WHERE error ~ '\muser \d+';

-- Erasing a user sets their references here to NULL, and `/export` reads the entries
-- about them: both find them by these, not by scanning the whole trail.
CREATE INDEX admin_audit_actor_id ON admin_audit (actor_id) WHERE actor_id IS NOT NULL;
CREATE INDEX admin_audit_target_user_id ON admin_audit (target_user_id)
    WHERE target_user_id IS NOT NULL;
