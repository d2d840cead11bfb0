-- What may be used where, and what the person keeps out of memory (docs/security.md,
-- "Between chats").
--
-- `shared_chat`: the message was said in a group or server channel (else in the
-- person's private chat with the bot). A reply in a shared chat is built from that
-- chat's own messages only; a fact is used in shared chats only when every message it
-- was learned from was said in one.
--
-- `remembered`: false for a message said while the person had switched memory off
-- (`/memory off`), and for the messages a forgotten fact came from (`/forget N`). Such a
-- message is never recalled nor learned from; it can still be in the recent window
-- while it is recent, as the conversation would make no sense without it.
ALTER TABLE messages
    ADD COLUMN shared_chat boolean NOT NULL DEFAULT false,
    ADD COLUMN remembered boolean NOT NULL DEFAULT true;
ALTER TABLE messages_archive
    ADD COLUMN shared_chat boolean NOT NULL DEFAULT false,
    ADD COLUMN remembered boolean NOT NULL DEFAULT true;

-- Until now the kind of chat was not stored. A message is private when it was said in
-- a chat the person's identity knows as its private chat with the bot (the only kind
-- the console adapter has: no chat id), else shared.
UPDATE messages m SET shared_chat = true
WHERE m.chat_id IS NOT NULL AND NOT EXISTS (
    SELECT FROM identities i
    WHERE i.user_id = m.user_id AND i.platform = m.platform AND i.private_chat_id = m.chat_id);
UPDATE messages_archive m SET shared_chat = true
WHERE m.chat_id IS NOT NULL AND NOT EXISTS (
    SELECT FROM identities i
    WHERE i.user_id = m.user_id AND i.platform = m.platform AND i.private_chat_id = m.chat_id);

-- A shared chat's own recent messages, newest first (the window of a reply there).
CREATE INDEX messages_shared_chat ON messages (user_id, platform, chat_id, id DESC)
    WHERE shared_chat;

-- `is_private` now means "used in private chats only". Facts learned so far from any
-- message that was not said in a shared chat (or from messages no longer known) become
-- private, as the memory job decides for new facts.
UPDATE facts f SET is_private = true
WHERE NOT f.is_private AND (
    cardinality(f.source_message_ids) = 0
    OR EXISTS (
        SELECT FROM unnest(f.source_message_ids) AS source (id)
        WHERE NOT EXISTS (SELECT FROM messages m WHERE m.id = source.id AND m.shared_chat)
          AND NOT EXISTS (
              SELECT FROM messages_archive a WHERE a.id = source.id AND a.shared_chat)));

-- `/memory off`: since when the person has kept the bot from learning and recalling
-- (NULL: memory on).
ALTER TABLE conversations ADD COLUMN memory_off_since timestamptz;
