-- The language a person chose for the bot's own texts (`/language de`); NULL: the one
-- their platform tells (`locale`). Erased with the user, exported with the profile.
ALTER TABLE users ADD COLUMN language text;
