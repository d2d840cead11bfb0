-- Drop the GIN indexes on the full-text `search` columns. No query uses them any more:
-- every full-text query reads one user's rows, through the B-tree on user_id, and
-- keyword recall matches with ts_match_vq so that a GIN scan of common words over every
-- user's rows is never planned (core/storage/text_search.py). What they still cost was
-- a GIN insert for every stored message, reply, fact and archived message, and the
-- pending-list flushes that an unlucky insert pays for (docs/pipeline.md).
DROP INDEX IF EXISTS messages_search;
DROP INDEX IF EXISTS messages_archive_search;
DROP INDEX IF EXISTS facts_search;
