-- Agents: worker processes on other hosts that talk to the control plane over its API and
-- never open the store. An admin creates one (its enrolment token's SHA-256 is kept until
-- used or expired); the agent exchanges the token for its credential, of which only the
-- SHA-256 is kept. A revoked agent keeps its row (for the audit trail and the console).
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    enrolment_hash TEXT UNIQUE,
    enrolment_expires_at BIGINT,
    credential_hash TEXT UNIQUE,
    host TEXT,
    version TEXT,
    slots BIGINT NOT NULL DEFAULT 0,
    backends TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    enrolled_at BIGINT,
    last_contact BIGINT,
    revoked_at BIGINT
);
-- Each endpoint's placement (`|agent:b|label:dmz|`; NULL: anywhere), read by the lease
-- statement so that a worker leases only jobs whose endpoints it may reach.
ALTER TABLE endpoints ADD COLUMN placement TEXT;
