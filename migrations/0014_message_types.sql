-- Voice notes and photos join the conversation (docs/media.md).
--
-- `message_type`: what the person sent: text, or the kind of attachment the message was
-- made from (a voice note's transcript, a photo's caption and description). Replies are
-- text.
--
-- `attachments`: a JSON array with one object per attachment the message was made
-- from: its kind, file name, MIME type and size as the platform gave them, the
-- platform's handle to download it again (`ref`: Telegram's file_id, Discord's
-- attachment URL), and what was made of it (`transcript`, `description`). Never the
-- file's bytes. NULL for plain text.
ALTER TABLE messages
    ADD COLUMN message_type text NOT NULL DEFAULT 'text',
    ADD COLUMN attachments jsonb,
    ADD CONSTRAINT messages_message_type_known CHECK (message_type IN
        ('text', 'voice', 'audio', 'video_note', 'photo', 'document'));
ALTER TABLE messages_archive
    ADD COLUMN message_type text NOT NULL DEFAULT 'text',
    ADD COLUMN attachments jsonb,
    ADD CONSTRAINT messages_archive_message_type_known CHECK (message_type IN
        ('text', 'voice', 'audio', 'video_note', 'photo', 'document'));
