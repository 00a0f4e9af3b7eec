-- poolgate schema, version 1. Portable SQL: the same text runs on SQLite and PostgreSQL.
-- Times are unix seconds (BIGINT); flags are 0/1 (BIGINT); sealed bytes are base64 TEXT.

CREATE TABLE pools (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    plan            TEXT NOT NULL,
    config_managed  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Pools, apps and identity sources created at run time, kept as config-file fragments so
-- that they pass through exactly the validation the file does.
CREATE TABLE fragments (
    pool_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (pool_id, kind, id)
);

CREATE TABLE users (
    pool_id         TEXT NOT NULL REFERENCES pools (id),
    id              TEXT NOT NULL,
    username        TEXT NOT NULL,
    email           TEXT,
    email_verified  BIGINT NOT NULL DEFAULT 0,
    name            TEXT NOT NULL DEFAULT '',
    disabled        BIGINT NOT NULL DEFAULT 0,
    failed_logins   BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    password_hash   TEXT,
    totp_secret     TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (pool_id, id)
);
CREATE UNIQUE INDEX users_username ON users (pool_id, username);
CREATE UNIQUE INDEX users_email ON users (pool_id, email);

CREATE TABLE user_groups (
    pool_id     TEXT NOT NULL REFERENCES pools (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (pool_id, name)
);

CREATE TABLE memberships (
    pool_id     TEXT NOT NULL,
    group_name  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    PRIMARY KEY (pool_id, group_name, user_id)
);
CREATE INDEX memberships_user ON memberships (pool_id, user_id);

CREATE TABLE links (
    pool_id     TEXT NOT NULL,
    id          TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (pool_id, id)
);
CREATE UNIQUE INDEX links_identity ON links (pool_id, source_id, issuer, subject);

CREATE TABLE sso_sessions (
    pool_id       TEXT NOT NULL,
    id            TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    auth_time     BIGINT NOT NULL,
    methods       TEXT NOT NULL,
    source        TEXT NOT NULL,
    upstream_sid  TEXT,
    client        TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    PRIMARY KEY (pool_id, id)
);

CREATE TABLE app_sessions (
    pool_id     TEXT NOT NULL,
    id          TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    sso_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    PRIMARY KEY (pool_id, id)
);
CREATE INDEX app_sessions_sso ON app_sessions (pool_id, sso_id);

CREATE TABLE signing_keys (
    pool_id         TEXT NOT NULL,
    kid             TEXT NOT NULL,
    alg             TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    sealed_private  TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT,
    PRIMARY KEY (pool_id, kid)
);

CREATE TABLE audit_events (
    id       TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    pool_id  TEXT,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    client   TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX audit_pool_at ON audit_events (pool_id, at);

-- Counters every node polls to learn of changes made elsewhere (e.g. 'routes').
CREATE TABLE generations (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
