-- Single-use values: a federation login's `state` once its callback came back (a replay
-- is refused on every node), kept until the value would have expired.
CREATE TABLE spent (
    pool_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (pool_id, kind, id)
);
CREATE INDEX spent_expiry ON spent (expires_at);
