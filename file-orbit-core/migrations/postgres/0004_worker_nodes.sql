-- Worker processes: each renews its row like a lease; alive while expires_at is ahead.
CREATE TABLE worker_nodes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    slots BIGINT NOT NULL,
    running BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    stopped_at BIGINT
);
