-- Nothing looks refresh tokens up by their SSO session (a sign-out ends them through the
-- revocation of that session, checked in memory), yet every refresh grant kept this index.
DROP INDEX IF EXISTS refresh_tokens_sso;
