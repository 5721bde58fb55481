//! The lease statement in its two dialects (SQLite and PostgreSQL).

use super::JOB_COLUMNS;
use crate::engine::store::Backend;

/// The lease statement. Both forms read the same candidates: the oldest due jobs of
/// each distinct priority (within a priority the oldest job has the highest aged
/// priority), from the partial index `jobs_queue` by a loose index scan, plus expired
/// leases, minus the jobs of endpoints at their limit (computed once, not per row); only
/// these few are sorted by aged priority.
///
/// - SQLite: `$1` is one worker; leases the most urgent candidate. Run once per worker of
///   a batch (one writer: each run sees the jobs leased before it).
/// - PostgreSQL: `$1` is a JSON array of workers; leases up to one job each in one
///   statement (leasers take turns on an advisory lock). `$5` candidates per priority,
///   of which the `$6` most urgent are locked (`SKIP LOCKED`: rows another transaction is
///   changing, a cancel or a completion, are passed over). A locked candidate is admitted
///   when each of its endpoints still has a seat counting the candidates before it that
///   use that endpoint (admitted or not, so a limit is never exceeded).
///
/// Both: `$2` lease expiry, `$3` now, `$4` aging (ms per priority point), and (`$5` in
/// SQLite, `$7` in PostgreSQL) the leaser's reach: a JSON array of the tokens it presents
/// (`reach_tokens`; empty for the control plane's own workers). A job is a candidate only
/// when each of its endpoints is unplaced or its stored placement holds one of the tokens. An expired lease
/// is a lost attempt: a job is leased again only while its losses stay below `max_lost`.
/// The aged priority is computed in floating point, so no priority or age overflows it.
pub(super) fn lease_statement(backend: Backend, max_lost: u32) -> String {
    let queue_index = match backend {
        Backend::Postgres => "",
        Backend::Sqlite => "INDEXED BY jobs_queue",
    };
    let not_busy = "j.source_endpoint NOT IN (SELECT name FROM busy) \
                    AND j.destination_endpoint NOT IN (SELECT name FROM busy)";
    let reachable = match backend {
        Backend::Postgres => {
            "json_array_elements_text(CAST($7 AS json)) t WHERE strpos(p.placement, t.value) > 0"
        }
        Backend::Sqlite => "json_each($5) t WHERE instr(p.placement, t.value) > 0",
    };
    let placed = format!(
        "NOT EXISTS (SELECT 1 FROM endpoints p \
             WHERE p.name IN (j.source_endpoint, j.destination_endpoint) AND p.placement IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM {reachable}))"
    );
    let not_busy = format!("{not_busy} AND {placed}");
    let relet = format!(
        "j.state = 'leased' AND j.lease_expires_at < $3 AND j.cancel_requested = 0 \
         AND j.attempts < j.max_attempts AND j.lost_attempts + 1 < {max_lost}"
    );
    let runnable = format!("((j.state = 'queued' AND j.run_after <= $3) OR ({relet}))");
    let urgency =
        "CAST(j.priority AS DOUBLE PRECISION) + CAST($3 - j.created_at AS DOUBLE PRECISION) / $4";
    let heads = match backend {
        Backend::Postgres => format!(
            "SELECT c.id FROM prios CROSS JOIN LATERAL (SELECT j.id FROM jobs j \
                 WHERE j.state = 'queued' AND j.priority = prios.p AND j.run_after <= $3 \
                 AND {not_busy} ORDER BY j.created_at, j.id LIMIT $5) c"
        ),
        // One connection, one leaser at a time: the head of each priority is enough.
        Backend::Sqlite => format!(
            "SELECT (SELECT j.id FROM jobs j {queue_index} WHERE j.state = 'queued' \
                 AND j.priority = prios.p AND j.run_after <= $3 AND {not_busy} \
                 ORDER BY j.created_at, j.id LIMIT 1) \
             FROM prios WHERE prios.p IS NOT NULL"
        ),
    };
    let candidates = format!(
        "WITH RECURSIVE prios(p) AS ( \
             SELECT * FROM (SELECT j.priority FROM jobs j {queue_index} WHERE j.state = 'queued' \
                 ORDER BY j.priority DESC LIMIT 1) top \
             UNION ALL \
             SELECT (SELECT j.priority FROM jobs j {queue_index} WHERE j.state = 'queued' \
                 AND j.priority < prios.p ORDER BY j.priority DESC LIMIT 1) \
             FROM prios WHERE prios.p IS NOT NULL), \
         used(name, n) AS ( \
             SELECT x.name, COUNT(*) FROM ( \
                 SELECT r.source_endpoint AS name FROM jobs r \
                     WHERE r.state = 'leased' AND r.lease_expires_at >= $3 \
                 UNION ALL \
                 SELECT r.destination_endpoint FROM jobs r \
                     WHERE r.state = 'leased' AND r.lease_expires_at >= $3 \
                     AND r.destination_endpoint <> r.source_endpoint) x \
             GROUP BY x.name), \
         busy(name) AS ( \
             SELECT u.name FROM used u LEFT JOIN endpoints e ON e.name = u.name \
             WHERE u.n >= COALESCE(e.max_concurrent, 1000000)), \
         candidates(id) AS ( \
             {heads} \
             UNION ALL \
             SELECT j.id FROM jobs j WHERE {relet} AND {not_busy})"
    );
    match backend {
        Backend::Sqlite => format!(
            "{candidates} \
             UPDATE jobs SET state = 'leased', lease_owner = $1, lease_expires_at = $2, \
                 attempts = attempts + 1, updated_at = $3, \
                 lost_attempts = lost_attempts + CASE WHEN state = 'leased' THEN 1 ELSE 0 END \
             WHERE id = (SELECT j.id FROM jobs j NOT INDEXED \
                 WHERE j.id IN (SELECT id FROM candidates) AND {runnable} \
                 ORDER BY {urgency} DESC, j.id LIMIT 1) \
             RETURNING {JOB_COLUMNS}"
        ),
        // An array keeps the planner on the primary key (a recursive CTE's row estimate
        // would make it scan the table).
        Backend::Postgres => format!(
            "{candidates}, \
             locked AS ( \
                 SELECT j.id, j.source_endpoint AS src, j.destination_endpoint AS dst, \
                     {urgency} AS urgency \
                 FROM jobs j WHERE j.id = ANY (ARRAY(SELECT id FROM candidates)) AND {runnable} \
                 ORDER BY urgency DESC, j.id LIMIT $6 FOR UPDATE OF j SKIP LOCKED), \
             ranked AS ( \
                 SELECT id, src, dst, ROW_NUMBER() OVER (ORDER BY urgency DESC, id) AS pos \
                 FROM locked), \
             uses(id, pos, name) AS ( \
                 SELECT id, pos, src FROM ranked \
                 UNION ALL SELECT id, pos, dst FROM ranked WHERE dst <> src), \
             seats(id, name, k) AS ( \
                 SELECT id, name, ROW_NUMBER() OVER (PARTITION BY name ORDER BY pos) FROM uses), \
             admitted(job_id, n) AS ( \
                 SELECT r.id, ROW_NUMBER() OVER (ORDER BY r.pos) FROM ranked r \
                 WHERE NOT EXISTS ( \
                     SELECT 1 FROM seats s LEFT JOIN endpoints e ON e.name = s.name \
                         LEFT JOIN used u ON u.name = s.name \
                     WHERE s.id = r.id AND s.k > COALESCE(e.max_concurrent, 1000000) - COALESCE(u.n, 0))), \
             owners(owner, n) AS ( \
                 SELECT value, ordinality \
                 FROM json_array_elements_text(CAST($1 AS json)) WITH ORDINALITY) \
             UPDATE jobs SET state = 'leased', lease_owner = o.owner, lease_expires_at = $2, \
                 attempts = attempts + 1, updated_at = $3, \
                 lost_attempts = jobs.lost_attempts + CASE WHEN jobs.state = 'leased' THEN 1 ELSE 0 END \
             FROM admitted a JOIN owners o ON o.n = a.n WHERE jobs.id = a.job_id \
             RETURNING {JOB_COLUMNS}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both dialects render with their essentials: SQLite's index hint and one worker,
    /// PostgreSQL's skip-locked batch over a JSON array of workers; both age priorities in
    /// floating point, stop re-leasing at `max_lost` and return the job's columns.
    #[test]
    fn lease_statement_renders_both_dialects() {
        let sqlite = lease_statement(Backend::Sqlite, 3);
        let postgres = lease_statement(Backend::Postgres, 7);
        for (sql, max_lost) in [(&sqlite, 3), (&postgres, 7)] {
            assert!(sql.starts_with("WITH RECURSIVE prios(p) AS"), "{sql}");
            assert!(
                sql.contains(
                    "CAST(j.priority AS DOUBLE PRECISION) + CAST($3 - j.created_at AS DOUBLE PRECISION) / $4"
                ),
                "{sql}"
            );
            assert!(
                sql.contains(&format!("j.lost_attempts + 1 < {max_lost}")),
                "{sql}"
            );
            assert!(sql.ends_with(&format!("RETURNING {JOB_COLUMNS}")), "{sql}");
            assert_eq!(sql.matches('(').count(), sql.matches(')').count(), "{sql}");
        }

        assert!(sqlite.contains("INDEXED BY jobs_queue"), "{sqlite}");
        assert_eq!(sqlite.matches("$1").count(), 1, "{sqlite}");
        assert!(sqlite.contains("lease_owner = $1"), "{sqlite}");
        assert!(!sqlite.contains("SKIP LOCKED"), "{sqlite}");
        assert!(!sqlite.contains("json_array_elements_text"), "{sqlite}");
        // `$5` is the leaser's reach, matched against each placed endpoint.
        assert!(sqlite.contains("json_each($5)"), "{sqlite}");
        assert!(!sqlite.contains("$6") && !sqlite.contains("$7"), "{sqlite}");

        assert!(
            postgres.contains("FOR UPDATE OF j SKIP LOCKED"),
            "{postgres}"
        );
        assert!(
            postgres.contains("json_array_elements_text(CAST($1 AS json)) WITH ORDINALITY"),
            "{postgres}"
        );
        assert!(
            postgres.contains("LIMIT $5") && postgres.contains("LIMIT $6"),
            "{postgres}"
        );
        assert!(
            postgres.contains("json_array_elements_text(CAST($7 AS json)) t"),
            "{postgres}"
        );
        assert!(!postgres.contains("INDEXED"), "{postgres}");
    }
}
