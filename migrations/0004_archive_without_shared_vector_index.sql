-- Moving a message to the archive re-inserted its vector into the archive's shared HNSW
-- index: most of the archive job's cost, and enough CPU to slow chat down while it ran
-- (docs/jobs.md). Recall over archived messages no longer needs that index: users up to
-- CONTEXT_EXACT_RECALL_MAX_ROWS messages are searched exactly (B-tree on user_id), and
-- the largest users have partial HNSW indexes of their own (the user_indexes job).
DROP INDEX IF EXISTS messages_archive_embedding_384;
