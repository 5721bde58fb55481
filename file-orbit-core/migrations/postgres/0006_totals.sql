-- Totals kept by triggers in the transaction that changes jobs, attempts or events, so
-- /metrics and /health read a few rows instead of counting every job (no code path can
-- forget them). PostgreSQL: each statement appends its changes as rows (a label set's
-- total is the sum of its rows), so concurrent transactions never wait on a shared total
-- row nor deadlock over two; readers fold the rows back into one per label set
-- (`Store::fold_totals`). SQLite keeps one row per label set (its 0006).

-- Jobs by state and endpoint pair: how many, their bytes, their retries (attempts after
-- the first).
CREATE TABLE job_totals (
    state TEXT NOT NULL,
    source_endpoint TEXT NOT NULL,
    destination_endpoint TEXT NOT NULL,
    jobs BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    retries BIGINT NOT NULL
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
    millis BIGINT NOT NULL
);

-- Stored events by state.
CREATE TABLE event_totals (
    state TEXT NOT NULL,
    events BIGINT NOT NULL
);

INSERT INTO job_totals (state, source_endpoint, destination_endpoint, jobs, bytes, retries)
SELECT state, source_endpoint, destination_endpoint, COUNT(*), COALESCE(SUM(bytes), 0),
    COALESCE(SUM(GREATEST(attempts - 1, 0)), 0)
FROM jobs GROUP BY state, source_endpoint, destination_endpoint;

INSERT INTO attempt_totals (outcome, le_ms, attempts, millis)
SELECT outcome, le_ms, COUNT(*), SUM(millis) FROM (
    SELECT a.outcome, a.finished_at - a.started_at AS millis,
        (SELECT MIN(b.le_ms) FROM attempt_duration_buckets b
         WHERE b.le_ms >= a.finished_at - a.started_at) AS le_ms
    FROM job_attempts a WHERE a.finished_at IS NOT NULL AND a.outcome IS NOT NULL) finished
GROUP BY outcome, le_ms;

INSERT INTO event_totals (state, events) SELECT state, COUNT(*) FROM events GROUP BY state;

-- One function per table; each statement's rows before (`old_rows`) and after
-- (`new_rows`) are netted per label set, and only label sets that changed get a row (a
-- lease renewal adds nothing).
CREATE FUNCTION job_totals_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_totals (state, source_endpoint, destination_endpoint, jobs, bytes, retries)
        SELECT state, source_endpoint, destination_endpoint, COUNT(*), SUM(bytes),
            SUM(GREATEST(attempts - 1, 0))
        FROM new_rows GROUP BY state, source_endpoint, destination_endpoint;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO job_totals (state, source_endpoint, destination_endpoint, jobs, bytes, retries)
        SELECT state, source_endpoint, destination_endpoint, -COUNT(*), -SUM(bytes),
            -SUM(GREATEST(attempts - 1, 0))
        FROM old_rows GROUP BY state, source_endpoint, destination_endpoint;
    ELSE
        INSERT INTO job_totals (state, source_endpoint, destination_endpoint, jobs, bytes, retries)
        SELECT state, source_endpoint, destination_endpoint, SUM(n), SUM(b), SUM(r) FROM (
            SELECT state, source_endpoint, destination_endpoint, 1 AS n, bytes AS b,
                GREATEST(attempts - 1, 0) AS r FROM new_rows
            UNION ALL
            SELECT state, source_endpoint, destination_endpoint, -1, -bytes,
                -GREATEST(attempts - 1, 0) FROM old_rows) changes
        GROUP BY state, source_endpoint, destination_endpoint
        HAVING SUM(n) <> 0 OR SUM(b) <> 0 OR SUM(r) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER job_totals_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_totals_changed();
CREATE TRIGGER job_totals_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_totals_changed();
CREATE TRIGGER job_totals_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_totals_changed();

-- An attempt counts once it has finished with an outcome.
CREATE FUNCTION attempt_totals_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO attempt_totals (outcome, le_ms, attempts, millis)
        SELECT outcome, le_ms, COUNT(*), SUM(millis) FROM (
            SELECT outcome, finished_at - started_at AS millis,
                (SELECT MIN(b.le_ms) FROM attempt_duration_buckets b
                 WHERE b.le_ms >= finished_at - started_at) AS le_ms
            FROM new_rows WHERE finished_at IS NOT NULL AND outcome IS NOT NULL) finished
        GROUP BY outcome, le_ms;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO attempt_totals (outcome, le_ms, attempts, millis)
        SELECT outcome, le_ms, -COUNT(*), -SUM(millis) FROM (
            SELECT outcome, finished_at - started_at AS millis,
                (SELECT MIN(b.le_ms) FROM attempt_duration_buckets b
                 WHERE b.le_ms >= finished_at - started_at) AS le_ms
            FROM old_rows WHERE finished_at IS NOT NULL AND outcome IS NOT NULL) finished
        GROUP BY outcome, le_ms;
    ELSE
        INSERT INTO attempt_totals (outcome, le_ms, attempts, millis)
        SELECT outcome, le_ms, SUM(n), SUM(millis) FROM (
            SELECT outcome, 1 AS n, finished_at - started_at AS millis,
                (SELECT MIN(b.le_ms) FROM attempt_duration_buckets b
                 WHERE b.le_ms >= finished_at - started_at) AS le_ms
            FROM new_rows WHERE finished_at IS NOT NULL AND outcome IS NOT NULL
            UNION ALL
            SELECT outcome, -1, -(finished_at - started_at),
                (SELECT MIN(b.le_ms) FROM attempt_duration_buckets b
                 WHERE b.le_ms >= finished_at - started_at)
            FROM old_rows WHERE finished_at IS NOT NULL AND outcome IS NOT NULL) changes
        GROUP BY outcome, le_ms
        HAVING SUM(n) <> 0 OR SUM(millis) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER attempt_totals_insert AFTER INSERT ON job_attempts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempt_totals_changed();
CREATE TRIGGER attempt_totals_update AFTER UPDATE ON job_attempts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempt_totals_changed();
CREATE TRIGGER attempt_totals_delete AFTER DELETE ON job_attempts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempt_totals_changed();

CREATE FUNCTION event_totals_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO event_totals (state, events)
        SELECT state, COUNT(*) FROM new_rows GROUP BY state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO event_totals (state, events)
        SELECT state, -COUNT(*) FROM old_rows GROUP BY state;
    ELSE
        INSERT INTO event_totals (state, events)
        SELECT state, SUM(n) FROM (
            SELECT state, 1 AS n FROM new_rows
            UNION ALL
            SELECT state, -1 FROM old_rows) changes
        GROUP BY state HAVING SUM(n) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER event_totals_insert AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION event_totals_changed();
CREATE TRIGGER event_totals_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION event_totals_changed();
CREATE TRIGGER event_totals_delete AFTER DELETE ON events REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION event_totals_changed();
