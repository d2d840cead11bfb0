-- Commands are not stored as conversation messages, but a redelivered command
-- (a platform retrying after a crash) must not run twice: /broadcast, /forget,
-- /delete_me. Rows are kept for a week, which covers any platform's redelivery.
CREATE TABLE handled_commands (
    platform             text NOT NULL,
    chat_id              text NOT NULL,
    platform_message_id  text NOT NULL,
    user_id              bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    handled_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, chat_id, platform_message_id)
);
CREATE INDEX handled_commands_handled_at ON handled_commands (handled_at);
CREATE INDEX handled_commands_user_id ON handled_commands (user_id);
