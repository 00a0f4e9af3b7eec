-- Back-channel logout: an app session of a client with a back-channel logout URI is
-- marked pending (0) when made; once revoked, a node claims it, posts a logout token to
-- the client, and marks it done (2) or retries with backoff. Existing rows: done.
ALTER TABLE app_sessions ADD COLUMN logout_state INTEGER NOT NULL DEFAULT 2;
ALTER TABLE app_sessions ADD COLUMN logout_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE app_sessions ADD COLUMN logout_next_at BIGINT NOT NULL DEFAULT 0;
