-- Recording a reply also marks the user's earlier failed messages as answered; this
-- partial index (failed messages are few) keeps that from reading the whole history.
CREATE INDEX messages_failed ON messages (user_id, id) WHERE status = 'failed';
