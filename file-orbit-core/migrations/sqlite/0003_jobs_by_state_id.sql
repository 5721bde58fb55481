-- Listing jobs by state, newest first (GET /api/v1/jobs?state=...).
CREATE INDEX jobs_by_state_id ON jobs (state, id);
