-- The audit log by time: the console's and the export's time ranges (since/until) read
-- that range's rows, not the whole log.
CREATE INDEX audit_log_by_at ON audit_log (at);
