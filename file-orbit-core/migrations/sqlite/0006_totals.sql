-- Totals kept by triggers in the transaction that changes a job, an attempt or an event,
-- so /metrics and /health read a few rows instead of counting every job (no code path
-- can forget them). Each row is one label set's total; SQLite keeps one row per label
-- set (PostgreSQL appends changes and folds them, see its 0006).

-- Jobs by state and endpoint pair: how many, their bytes, their retries (attempts after
-- the first).
CREATE TABLE job_totals (
    state TEXT NOT NULL,
    source_endpoint TEXT NOT NULL,
    destination_endpoint TEXT NOT NULL,
    jobs BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    retries BIGINT NOT NULL,
    PRIMARY KEY (state, source_endpoint, destination_endpoint)
);

-- The upper bounds (ms) of the attempt duration buckets; the last is +Inf.
CREATE TABLE attempt_duration_buckets (le_ms BIGINT PRIMARY KEY);
INSERT INTO attempt_duration_buckets (le_ms) VALUES (100), (500), (1000), (5000), (15000),
    (60000), (300000), (900000), (3600000), (9223372036854775807);

-- Finished attempts by outcome and duration bucket: how many, their total duration.
CREATE TABLE attempt_totals (
    outcome TEXT NOT NULL,
    le_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    millis BIGINT NOT NULL,
    PRIMARY KEY (outcome, le_ms)
);

-- Stored events by state.
CREATE TABLE event_totals (
    state TEXT NOT NULL PRIMARY KEY,
    events BIGINT NOT NULL
);

INSERT INTO job_totals (state, source_endpoint, destination_endpoint, jobs, bytes, retries)
SELECT state, source_endpoint, destination_endpoint, COUNT(*), COALESCE(SUM(bytes), 0),
    COALESCE(SUM(MAX(attempts - 1, 0)), 0)
FROM jobs GROUP BY state, source_endpoint, destination_endpoint;

INSERT INTO attempt_totals (outcome, le_ms, attempts, millis)
SELECT outcome, le_ms, COUNT(*), SUM(millis) FROM (
    SELECT a.outcome, a.finished_at - a.started_at AS millis,
        (SELECT MIN(b.le_ms) FROM attempt_duration_buckets b
         WHERE b.le_ms >= a.finished_at - a.started_at) AS le_ms
    FROM job_attempts a WHERE a.finished_at IS NOT NULL AND a.outcome IS NOT NULL)
GROUP BY outcome, le_ms;

INSERT INTO event_totals (state, events) SELECT state, COUNT(*) FROM events GROUP BY state;

CREATE TRIGGER job_totals_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_totals (state, source_endpoint, destination_endpoint, jobs, bytes, retries)
    VALUES (NEW.state, NEW.source_endpoint, NEW.destination_endpoint, 1, NEW.bytes,
        MAX(NEW.attempts - 1, 0))
    ON CONFLICT (state, source_endpoint, destination_endpoint) DO UPDATE SET
        jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes,
        retries = retries + excluded.retries;
END;

CREATE TRIGGER job_totals_update
AFTER UPDATE OF state, source_endpoint, destination_endpoint, bytes, attempts ON jobs
WHEN OLD.state IS NOT NEW.state OR OLD.source_endpoint IS NOT NEW.source_endpoint
    OR OLD.destination_endpoint IS NOT NEW.destination_endpoint OR OLD.bytes IS NOT NEW.bytes
    OR OLD.attempts IS NOT NEW.attempts
BEGIN
    UPDATE job_totals SET jobs = jobs - 1, bytes = bytes - OLD.bytes,
        retries = retries - MAX(OLD.attempts - 1, 0)
    WHERE state = OLD.state AND source_endpoint = OLD.source_endpoint
        AND destination_endpoint = OLD.destination_endpoint;
    INSERT INTO job_totals (state, source_endpoint, destination_endpoint, jobs, bytes, retries)
    VALUES (NEW.state, NEW.source_endpoint, NEW.destination_endpoint, 1, NEW.bytes,
        MAX(NEW.attempts - 1, 0))
    ON CONFLICT (state, source_endpoint, destination_endpoint) DO UPDATE SET
        jobs = jobs + excluded.jobs, bytes = bytes + excluded.bytes,
        retries = retries + excluded.retries;
END;

CREATE TRIGGER job_totals_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_totals SET jobs = jobs - 1, bytes = bytes - OLD.bytes,
        retries = retries - MAX(OLD.attempts - 1, 0)
    WHERE state = OLD.state AND source_endpoint = OLD.source_endpoint
        AND destination_endpoint = OLD.destination_endpoint;
END;

-- An attempt counts once it has finished with an outcome.
CREATE TRIGGER attempt_totals_insert AFTER INSERT ON job_attempts
WHEN NEW.finished_at IS NOT NULL AND NEW.outcome IS NOT NULL
BEGIN
    INSERT INTO attempt_totals (outcome, le_ms, attempts, millis)
    SELECT NEW.outcome, MIN(le_ms), 1, NEW.finished_at - NEW.started_at
    FROM attempt_duration_buckets WHERE le_ms >= NEW.finished_at - NEW.started_at
    ON CONFLICT (outcome, le_ms) DO UPDATE SET
        attempts = attempts + excluded.attempts, millis = millis + excluded.millis;
END;

CREATE TRIGGER attempt_totals_update
AFTER UPDATE OF started_at, finished_at, outcome ON job_attempts
WHEN OLD.started_at IS NOT NEW.started_at OR OLD.finished_at IS NOT NEW.finished_at
    OR OLD.outcome IS NOT NEW.outcome
BEGIN
    UPDATE attempt_totals SET attempts = attempts - 1,
        millis = millis - (OLD.finished_at - OLD.started_at)
    WHERE OLD.finished_at IS NOT NULL AND OLD.outcome IS NOT NULL
        AND outcome = OLD.outcome AND le_ms = (SELECT MIN(le_ms) FROM attempt_duration_buckets
            WHERE le_ms >= OLD.finished_at - OLD.started_at);
    INSERT INTO attempt_totals (outcome, le_ms, attempts, millis)
    SELECT NEW.outcome, MIN(le_ms), 1, NEW.finished_at - NEW.started_at
    FROM attempt_duration_buckets WHERE le_ms >= NEW.finished_at - NEW.started_at
        AND NEW.finished_at IS NOT NULL AND NEW.outcome IS NOT NULL
    GROUP BY NEW.outcome
    ON CONFLICT (outcome, le_ms) DO UPDATE SET
        attempts = attempts + excluded.attempts, millis = millis + excluded.millis;
END;

CREATE TRIGGER attempt_totals_delete AFTER DELETE ON job_attempts
WHEN OLD.finished_at IS NOT NULL AND OLD.outcome IS NOT NULL
BEGIN
    UPDATE attempt_totals SET attempts = attempts - 1,
        millis = millis - (OLD.finished_at - OLD.started_at)
    WHERE outcome = OLD.outcome AND le_ms = (SELECT MIN(le_ms) FROM attempt_duration_buckets
        WHERE le_ms >= OLD.finished_at - OLD.started_at);
END;

CREATE TRIGGER event_totals_insert AFTER INSERT ON events BEGIN
    INSERT INTO event_totals (state, events) VALUES (NEW.state, 1)
    ON CONFLICT (state) DO UPDATE SET events = events + 1;
END;

CREATE TRIGGER event_totals_update AFTER UPDATE OF state ON events
WHEN OLD.state IS NOT NEW.state
BEGIN
    UPDATE event_totals SET events = events - 1 WHERE state = OLD.state;
    INSERT INTO event_totals (state, events) VALUES (NEW.state, 1)
    ON CONFLICT (state) DO UPDATE SET events = events + 1;
END;

CREATE TRIGGER event_totals_delete AFTER DELETE ON events BEGIN
    UPDATE event_totals SET events = events - 1 WHERE state = OLD.state;
END;
