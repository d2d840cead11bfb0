-- The archive's full-text vector becomes a plain column, copied from the live row when
-- a message moves, instead of a generated one recomputed by every archive insert (a
-- to_tsvector per archived row, for a value the live row already holds). Archived
-- content never changes, so the copy stays right. Existing values are kept; every
-- writer of messages_archive must now give `search` (NOT NULL makes a writer that
-- forgets it fail at once instead of archiving an unsearchable message).
ALTER TABLE messages_archive ALTER COLUMN search DROP EXPRESSION;
ALTER TABLE messages_archive ALTER COLUMN search SET NOT NULL;
