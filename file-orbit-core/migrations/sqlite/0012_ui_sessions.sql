-- The web console's sessions: an API key or JWT exchanged for a cookie at sign-in. Only
-- the cookie's SHA-256 is kept; `credential` is the API key's SHA-256 (so a revoked key
-- ends its sessions at once) or NULL for a JWT (the session ends with the token).
CREATE TABLE ui_sessions (
    sha256 TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    credential TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);
