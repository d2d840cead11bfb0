-- Rate-limit buckets are written on every message and worth nothing after a crash (a
-- reset bucket only forgives a few messages): no WAL for them. An unlogged table's
-- writes skip the WAL, so taking a token no longer waits for a WAL flush, and the
-- table is emptied by crash recovery (and is not copied to streaming replicas, where
-- nothing reads it).
ALTER TABLE rate_limits SET UNLOGGED;
