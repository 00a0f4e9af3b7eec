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

-- An SSO session that came through an identity source remembers who the person is there,
-- so that the source's back-channel logout (by its `sid`, or every session of its `sub`)
-- can end it, and a sign-out can be sent on to the source with the ID token as a hint.
ALTER TABLE sso_sessions ADD COLUMN upstream_iss TEXT;
ALTER TABLE sso_sessions ADD COLUMN upstream_sub TEXT;
ALTER TABLE sso_sessions ADD COLUMN upstream_id_token TEXT;
CREATE INDEX sso_sessions_upstream ON sso_sessions (pool_id, source, upstream_sub);
