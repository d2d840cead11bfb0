-- What the keyword list of recall needs to know about a user with indexes of their own
-- (core/recall/user_indexes.py, core/recall/keywords.py): their row count (N of BM25:
-- counting 50k rows at every question would cost more than the search) and the terms
-- in more than a few percent of their rows (the person's own name is in half of their
-- messages), which recall does not look up through the user's GIN indexes: BM25 weighs
-- them little, and matching them means scoring thousands of rows. Written by the
-- `user_indexes` job at each run, like the planner's statistics; gone with the user.
CREATE TABLE user_search_stats (
    user_id        bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    rows           bigint NOT NULL,
    common_terms   text[] NOT NULL,
    -- The share of the user's rows holding each of `common_terms`, in the same order.
    common_shares  real[] NOT NULL,
    computed_at    timestamptz NOT NULL DEFAULT now()
);
