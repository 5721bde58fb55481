-- File Orbit's store, SQLite flavour (times are unix milliseconds; JSON is TEXT).
CREATE TABLE endpoints (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    public_config TEXT NOT NULL,
    sealed_config TEXT NOT NULL,
    key_id TEXT NOT NULL,
    max_concurrent INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE templates (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT UNIQUE,
    spec TEXT NOT NULL,
    source_endpoint TEXT NOT NULL,
    destination_endpoint TEXT NOT NULL,
    template TEXT,
    chain_id INTEGER,
    parent_id INTEGER,
    next_hops TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff_base_ms INTEGER NOT NULL,
    backoff_max_ms INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL,
    last_error TEXT,
    last_error_kind TEXT,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX jobs_by_state ON jobs (state, run_after);
CREATE INDEX jobs_by_chain ON jobs (chain_id);

CREATE TABLE job_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    outcome TEXT,
    error TEXT
);
CREATE INDEX job_attempts_by_job ON job_attempts (job_id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    payload TEXT NOT NULL,
    matched_templates TEXT NOT NULL,
    job_ids TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE schedules (
    template TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    next_fire_at INTEGER NOT NULL,
    last_fired_at INTEGER
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL
);
