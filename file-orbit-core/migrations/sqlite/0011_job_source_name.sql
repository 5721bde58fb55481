-- The stored source whose event made a job (NULL: submitted directly, by a schedule or by
-- a replay through the API): kept on every job of the chain, shown by the API, and read
-- by notification rules filtered by source.
ALTER TABLE jobs ADD COLUMN source_name TEXT;
