//! The totals the store keeps for `/metrics` and `/health` (jobs by state and endpoint
//! pair, attempts by outcome and duration bucket, events by state) equal what counting
//! the rows says, after a mixed workload through the store's own calls and after
//! changes made by hand in SQL; on SQLite and on the real PostgreSQL test server.

mod common;

use common::{postgres_url, sqlite_url};
use file_orbit::engine::{Completion, JobRequest, JobState, Store};
use file_orbit::error::{Error, ErrorKind};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_match_the_rows_on_sqlite() {
    let (url, _dir) = sqlite_url();
    totals_match_the_rows(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_match_the_rows_on_postgres() {
    totals_match_the_rows(&postgres_url().await).await;
}

fn request(source: &str, destination: &str, index: usize, hops: usize) -> JobRequest {
    let spec = |source: &str, destination: &str| {
        TransferSpec::file(
            source,
            &format!("in/{index}.csv"),
            destination,
            PathTemplate::parse("out/{filename}").unwrap(),
        )
    };
    let mut request = JobRequest::new(spec(source, destination));
    request.next_hops = (0..hops).map(|_| spec(destination, "c")).collect();
    request
}

/// Runs `sql` (each column cast to text by the caller) on its own connection to the
/// store: rows as strings, sorted.
async fn rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    use sqlx::{Connection, Row};
    let mut found: Vec<Vec<String>> = if url.starts_with("sqlite://") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
        rows.iter()
            .map(|row| (0..row.len()).map(|i| row.get::<String, _>(i)).collect())
            .collect()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
        rows.iter()
            .map(|row| (0..row.len()).map(|i| row.get::<String, _>(i)).collect())
            .collect()
    };
    found.sort();
    found
}

/// Runs each statement of `sql` on its own connection to the store, in one transaction.
async fn execute(url: &str, sql: &[String]) {
    use sqlx::Connection;
    if url.starts_with("sqlite://") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        for statement in sql {
            sqlx::query(statement).execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        for statement in sql {
            sqlx::query(statement).execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// The store's totals and the rows' counts, side by side.
async fn assert_totals_match(store: &Store, url: &str) {
    let totals = store.job_totals().await.unwrap();
    let mut kept: Vec<Vec<String>> = totals
        .iter()
        .map(|t| {
            vec![
                t.state.as_str().to_string(),
                t.source_endpoint.clone(),
                t.destination_endpoint.clone(),
                t.jobs.to_string(),
                t.bytes.to_string(),
                t.retries.to_string(),
            ]
        })
        .collect();
    kept.sort();
    let counted = rows(
        url,
        "SELECT state, source_endpoint, destination_endpoint, CAST(COUNT(*) AS TEXT), \
             CAST(SUM(bytes) AS TEXT), \
             CAST(SUM(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END) AS TEXT) \
         FROM jobs GROUP BY state, source_endpoint, destination_endpoint",
    )
    .await;
    assert_eq!(kept, counted, "jobs by state and endpoint pair");
    let counts = store.job_counts().await.unwrap();
    for state in [
        JobState::Queued,
        JobState::Leased,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ] {
        let counted: i64 = kept
            .iter()
            .filter(|row| row[0] == state.as_str())
            .map(|row| row[3].parse::<i64>().unwrap())
            .sum();
        assert_eq!(counts.get(state), counted, "{state:?}");
    }

    let attempts = store.attempt_totals().await.unwrap();
    assert_eq!(
        attempts.buckets,
        [
            100,
            500,
            1000,
            5000,
            15000,
            60000,
            300000,
            900000,
            3600000,
            i64::MAX
        ]
    );
    let mut kept: Vec<Vec<String>> = attempts
        .totals
        .iter()
        .map(|t| {
            vec![
                t.outcome.clone(),
                t.le_ms.to_string(),
                t.attempts.to_string(),
                t.millis.to_string(),
            ]
        })
        .collect();
    kept.sort();
    let counted = rows(
        url,
        "SELECT outcome, CAST(le_ms AS TEXT), CAST(COUNT(*) AS TEXT), CAST(SUM(millis) AS TEXT) \
         FROM (SELECT outcome, finished_at - started_at AS millis, \
                   (SELECT MIN(b.le_ms) FROM attempt_duration_buckets b \
                    WHERE b.le_ms >= finished_at - started_at) AS le_ms \
               FROM job_attempts WHERE finished_at IS NOT NULL AND outcome IS NOT NULL) a \
         GROUP BY outcome, le_ms",
    )
    .await;
    assert_eq!(kept, counted, "attempts by outcome and bucket");

    let mut kept: Vec<Vec<String>> = store
        .event_totals()
        .await
        .unwrap()
        .into_iter()
        .map(|(state, events)| vec![state, events.to_string()])
        .collect();
    kept.sort();
    let counted = rows(
        url,
        "SELECT state, CAST(COUNT(*) AS TEXT) FROM events GROUP BY state",
    )
    .await;
    assert_eq!(kept, counted, "events by state");
}

async fn totals_match_the_rows(url: &str) {
    let store = Store::open(url).await.unwrap();
    let (long, short, aging) = (
        Duration::from_secs(60),
        Duration::from_millis(1),
        Duration::from_secs(60),
    );
    let pairs = [("a", "b"), ("b", "c"), ("a", "c")];
    let mut ids = Vec::new();
    for index in 0..14 {
        let (source, destination) = pairs[index % pairs.len()];
        let id = store
            .submit(&request(source, destination, index, index % 3), "test")
            .await
            .unwrap();
        ids.push(id);
    }
    // The same idempotency key twice: one job.
    let mut keyed = request("a", "b", 99, 0);
    keyed.idempotency_key = Some("once".into());
    for _ in 0..2 {
        store.submit(&keyed, "test").await.unwrap();
    }
    assert_totals_match(&store, url).await;

    let workers: Vec<String> = (0..10).map(|n| format!("w{n}")).collect();
    let leased = store.lease_many(&workers, long, aging).await.unwrap();
    assert_eq!(leased.len(), 10);
    let done: Vec<Completion> = leased[..4]
        .iter()
        .enumerate()
        .map(|(n, job)| Completion {
            id: job.id,
            worker: job.lease_owner.clone().unwrap(),
            bytes: 1000 * (n as u64 + 1),
            files: 1,
        })
        .collect();
    assert!(
        store
            .complete_many(&done)
            .await
            .unwrap()
            .iter()
            .all(|&ok| ok)
    );
    let transient = Error::new(ErrorKind::Connection, "test", "refused");
    let permanent = Error::new(ErrorKind::InvalidInput, "test", "bad");
    let owner = |n: usize| leased[n].lease_owner.clone().unwrap();
    store
        .fail(leased[4].id, &owner(4), &transient)
        .await
        .unwrap();
    store
        .fail(leased[5].id, &owner(5), &permanent)
        .await
        .unwrap();
    assert!(store.release(leased[6].id, &owner(6)).await.unwrap());
    assert_eq!(
        store.cancel(leased[7].id, "test").await.unwrap(),
        JobState::Leased
    );
    assert!(store.cancelled(leased[7].id, &owner(7)).await.unwrap());
    store
        .heartbeat(leased[8].id, &owner(8), long)
        .await
        .unwrap();
    let queued = store.jobs(&Default::default()).await.unwrap();
    let waiting = queued
        .iter()
        .find(|job| job.state == JobState::Queued)
        .unwrap();
    assert_eq!(
        store.cancel(waiting.id, "test").await.unwrap(),
        JobState::Cancelled
    );
    store.retry(leased[5].id, "test").await.unwrap();
    assert_totals_match(&store, url).await;

    // A lease that runs out and is taken over: the first attempt is closed as lost.
    let lapsing = store.lease("lapsing", short, aging).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        let job = store.lease("next", long, aging).await.unwrap();
        if let Some(job) = job.filter(|job| job.id == lapsing.id) {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "never taken over");
        tokio::task::yield_now().await;
    };
    assert_eq!(taken.attempts, 2);
    let (id, source) = store
        .insert_event(
            "watch",
            None,
            Some("e1"),
            &serde_json::json!({}),
            "received",
            None,
        )
        .await
        .unwrap();
    assert_eq!(source, file_orbit::engine::EventState::Received);
    store.event_processed(id, &[], &ids[..1]).await.unwrap();
    store
        .insert_event(
            "watch",
            None,
            Some("e1"),
            &serde_json::json!({}),
            "received",
            None,
        )
        .await
        .unwrap();
    store
        .insert_event(
            "watch",
            None,
            None,
            &serde_json::json!({}),
            "dead",
            Some("no"),
        )
        .await
        .unwrap();
    assert_totals_match(&store, url).await;

    // By hand: attempts moved to longer buckets, a job and its attempts deleted, and
    // (so PostgreSQL has many rows to fold) a job inserted and finished 1100 times, one
    // statement each.
    let victim = ids[1];
    let mut sql = vec![
        "UPDATE job_attempts SET started_at = started_at - 7000 * (id % 3) \
         WHERE finished_at IS NOT NULL"
            .to_string(),
        format!("DELETE FROM job_attempts WHERE job_id = {victim}"),
        format!("DELETE FROM jobs WHERE id = {victim}"),
    ];
    let spec = serde_json::to_string(&request("a", "b", 0, 0).spec).unwrap();
    for n in 0..1100 {
        sql.push(format!(
            "INSERT INTO jobs (spec, source_endpoint, destination_endpoint, next_hops, priority, \
                 state, attempts, max_attempts, backoff_base_ms, backoff_max_ms, run_after, \
                 cancel_requested, bytes, files, created_at, updated_at) \
             VALUES ('{spec}', 'x{}', 'y', '[]', 0, 'queued', 0, 5, 1, 1, 0, 0, 0, 0, 0, 0)",
            n % 4
        ));
    }
    sql.push(
        "UPDATE jobs SET state = 'succeeded', bytes = 7, attempts = 3 WHERE source_endpoint = 'x1'"
            .into(),
    );
    execute(url, &sql).await;
    assert_totals_match(&store, url).await;
    if url.starts_with("postgres") {
        // The read folded the rows: a few per label set are left.
        let left = rows(url, "SELECT CAST(COUNT(*) AS TEXT) FROM job_totals").await;
        let left: usize = left[0][0].parse().unwrap();
        assert!(left < 60, "{left} rows of job totals after a fold");
        assert_totals_match(&store, url).await;
    }
}
