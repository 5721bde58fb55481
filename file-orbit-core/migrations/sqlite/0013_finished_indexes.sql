-- The dashboard's last hour and last day (GET /api/v1/dashboard): jobs and attempts by
-- the time they finished, so its counts read that window's rows, not every row.
CREATE INDEX jobs_by_finished ON jobs (finished_at);
CREATE INDEX job_attempts_by_finished ON job_attempts (finished_at);
