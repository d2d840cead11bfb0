-- A person's documents (docs/documents.md): text, Markdown and PDF files they sent,
-- kept as chunks of text with embeddings and recalled beside messages and facts.
-- The file itself is not kept, only its text.

-- `shared_chat`, `platform`, `chat_id`: where the document was sent. Sent in the
-- person's private chat (`shared_chat` false) it is recalled only there; sent in a
-- group or server channel, only there and in the person's private chat (the rule of
-- messages, docs/security.md "Between chats").
-- `sha256`: of the file's bytes, so the same file sent twice (or a platform delivering
-- it again) is kept once.
CREATE TABLE documents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename     text NOT NULL,
    media_type   text NOT NULL CHECK (media_type IN ('text/plain', 'text/markdown',
                                                     'application/pdf')),
    size_bytes   integer NOT NULL CHECK (size_bytes >= 0),
    pages        integer CHECK (pages > 0),
    chunk_count  integer NOT NULL CHECK (chunk_count > 0),
    sha256       bytea NOT NULL,
    shared_chat  boolean NOT NULL,
    platform     text NOT NULL,
    chat_id      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT documents_user_sha256_unique UNIQUE (user_id, sha256)
);
CREATE INDEX documents_user_id ON documents (user_id, id);

-- One chunk of a document's text, sized for the embedder's window. `position` orders a
-- document's chunks; `page` (PDF, from 1), `heading` (the Markdown heading above it)
-- and `char_offset` (where it starts in the page's or the file's text) name where it is.
-- `user_id` repeats the document's, so that recall scans one person's rows through one
-- index, as for messages and facts. The embedding follows messages and facts: halfvec
-- of no fixed dimension, kept inline, searched exactly per person.
CREATE TABLE document_chunks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id  bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position     integer NOT NULL CHECK (position >= 0),
    page         integer CHECK (page > 0),
    heading      text,
    char_offset  integer NOT NULL CHECK (char_offset >= 0),
    content      text NOT NULL,
    embedding    halfvec,
    CONSTRAINT document_chunks_position_unique UNIQUE (document_id, position)
);
ALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE MAIN;
CREATE INDEX document_chunks_user_id ON document_chunks (user_id, id);

-- `python -m bot reembed` re-embeds document chunks too.
ALTER TABLE reembed_progress DROP CONSTRAINT reembed_progress_source_check;
ALTER TABLE reembed_progress ADD CONSTRAINT reembed_progress_source_check
    CHECK (source IN ('facts', 'messages', 'archive', 'document_chunks'));
