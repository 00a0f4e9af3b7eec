-- Secrets of registered clients: only a hash (SHA-256 of 32 random bytes) is kept. A
-- rotated secret keeps working until `expires_at` (the overlap); NULL: no end.
CREATE TABLE client_secrets (
    pool_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (pool_id, client_id, hash)
);

-- Refresh tokens, by hash. Each use spends the token and makes its successor in the same
-- family; a spent one presented again revokes the family.
CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    family TEXT NOT NULL,
    client_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sso_sid TEXT NOT NULL,
    offline INTEGER NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_sso ON refresh_tokens (pool_id, sso_sid);
