-- Event sources run by the service: a row per named source (its spec public and sealed),
-- whether it is enabled, where it may run, and the lease of the node running it with the
-- status that node reports (state, counters, last event, last error).
CREATE TABLE sources (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    public_spec TEXT NOT NULL,
    sealed_spec TEXT NOT NULL,
    key_id TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    placement TEXT NOT NULL,
    revision INTEGER NOT NULL,
    owner TEXT,
    owner_node TEXT,
    lease_until INTEGER,
    state TEXT NOT NULL,
    counters TEXT NOT NULL,
    last_event_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The named source an event came from (NULL: a direct call, a schedule, a replay).
ALTER TABLE events ADD COLUMN source_name TEXT;
-- Events of one source, newest first (GET /api/v1/events?source_name=).
CREATE INDEX events_by_source_name ON events (source_name, id);
