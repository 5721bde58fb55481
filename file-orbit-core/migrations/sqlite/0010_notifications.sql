-- Notifications: a row per named rule and channel. The rule (events, filter, rate limit,
-- tries) is plain JSON; the channel is sealed (it holds keys, passwords and secret URLs)
-- and also kept with its secrets as *** for listing. The rate window of the rule lives
-- here too: its start, the messages sent in it and the digest collecting the rest.
CREATE TABLE notifications (
    name TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    rule TEXT NOT NULL,
    public_channel TEXT NOT NULL,
    sealed_channel TEXT NOT NULL,
    key_id TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    window_start INTEGER,
    window_sent INTEGER NOT NULL,
    digest_id INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The outbox: one row per message to send (one event, or a digest of many), made from
-- the audit log in the transaction that moves the cursor below, sent by any node that
-- leases it. A digest is 'collecting' until its window ends.
CREATE TABLE notification_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification TEXT NOT NULL,
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    item_count INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    last_error TEXT,
    answer TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX notification_messages_due ON notification_messages (state, run_after);
CREATE INDEX notification_messages_of ON notification_messages (notification, id);

-- How far the audit log has been read for notifications: one row. Starts at the end of
-- the log as it is now (what happened before notifications existed is not announced).
CREATE TABLE notify_cursor (
    id INTEGER PRIMARY KEY,
    audit_id INTEGER NOT NULL
);
INSERT INTO notify_cursor (id, audit_id) SELECT 1, COALESCE(MAX(id), 0) FROM audit_log;

-- Messages sent, attempts failed and messages dead, by channel type: kept as they happen
-- so /metrics reads a few rows, not the outbox.
CREATE TABLE notification_totals (
    channel TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (channel, outcome)
);
