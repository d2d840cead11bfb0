-- The recording a voice note, audio file or video note was transcribed from, kept only
-- when MEDIA_KEEP_AUDIO asks (docs/media.md "Keeping the audio"): to transcribe it
-- again with a better model later, and for the person's own export.
--
-- `message_id` names the message whose text is the transcript, live or archived. No
-- foreign key to `messages`: the archive job moves a message to `messages_archive`
-- keeping its id (a DELETE from `messages`), and the recording follows the id. The
-- statements that delete messages for good delete their recordings in the same
-- statement (`/forget all`, archive retention); `/delete_me` cascades from `users`.
CREATE TABLE message_audio (
    message_id  bigint PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mime_type   text NOT NULL,
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_audio_user_id ON message_audio (user_id, message_id);
-- Recordings are compressed already (Opus, MP3, AAC): stored out of line, not
-- compressed again.
ALTER TABLE message_audio ALTER COLUMN data SET STORAGE EXTERNAL;
