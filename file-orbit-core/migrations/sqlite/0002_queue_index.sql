-- Queued jobs by priority, then age: lease reads the head of each priority from here.
CREATE INDEX jobs_queue ON jobs (priority, created_at, id) WHERE state = 'queued';
