-- Every node looks for back-channel logouts to deliver twice a second: only the few app
-- sessions still pending are indexed, so the look costs nothing as app sessions pile up.
CREATE INDEX app_sessions_logout_pending ON app_sessions (logout_next_at) WHERE logout_state = 0;
