-- How often a job's worker was lost (its lease expired while running): a job that keeps
-- killing its workers stops being leased. And the running attempt's live progress (JSON:
-- bytes, files, totals, speed, eta), written about once a second by the worker's process.
-- And what a user should know about a finished transfer (JSON list, e.g. names the
-- destination could not hold as they were and renamed).
ALTER TABLE jobs ADD COLUMN lost_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN progress TEXT;
ALTER TABLE jobs ADD COLUMN warnings TEXT;
