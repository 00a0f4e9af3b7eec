-- Sign-in: authorization codes (single use), MFA recovery codes, TOTP replay guard.

CREATE TABLE oidc_codes (
    code_hash   TEXT PRIMARY KEY,
    pool_id     TEXT NOT NULL,
    body        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    pool_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (pool_id, user_id, code_hash)
);

ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
