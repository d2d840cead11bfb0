-- The same file is kept once per place it was sent to, not once per person: once for
-- the person's private chats, once per group or server channel. Kept once per person,
-- a file sent in private and then in a group was answered in the group as "already
-- kept" (naming the private copy) and stayed out of the group's recall.
ALTER TABLE documents DROP CONSTRAINT documents_user_sha256_unique;
CREATE UNIQUE INDEX documents_kept_once_per_place ON documents
    (user_id, sha256, (CASE WHEN shared_chat THEN platform || ':' || chat_id ELSE '' END));
