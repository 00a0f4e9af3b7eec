-- A redeemed code is kept (marked used) until it would have expired, with the app session
-- its tokens belong to, so that a replay can revoke what the first redemption gave.

ALTER TABLE oidc_codes ADD COLUMN used_at BIGINT;
ALTER TABLE oidc_codes ADD COLUMN grant_sid TEXT;
