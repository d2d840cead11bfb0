-- Drop the shared HNSW indexes of the live tables, as 0004 did for the archive.
-- Recall no longer reads them: users up to CONTEXT_EXACT_RECALL_MAX_ROWS messages are
-- searched exactly through the B-tree on user_id (faster than these indexes at that
-- size, and exact), and the largest users are searched through partial HNSW indexes of
-- their own (the user_indexes job). What the shared indexes still cost was an HNSW
-- insert (a graph search over every user's vectors) for each stored message and reply
-- and each learned fact: the largest part of the database's work per chat turn
-- (docs/pipeline.md). A user above the threshold who has no index of their own yet
-- is searched exactly until the job builds theirs.
DROP INDEX IF EXISTS messages_embedding_384;
DROP INDEX IF EXISTS facts_embedding_384;
