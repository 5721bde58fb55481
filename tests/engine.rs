//! The durable engine, the same suite on SQLite and on the real PostgreSQL test server:
//! jobs end to end, idempotency, priorities with aging, leases, cancellation and retry,
//! per-endpoint concurrency, chains, sealed credentials with key rotation, templates and
//! the tamper-evident audit log.

mod common;

use common::{Kind, endpoint, local_root, orbit_options, postgres_url, sqlite_url};
use file_orbit::Secret;
use file_orbit::endpoint::{Endpoint, EndpointConfig};
use file_orbit::engine::{
    Completion, FileEvent, JobFilter, JobRequest, JobState, LeaseStatus, Limits, Matcher, Orbit,
    OrbitOptions, Store, TransferTemplate,
};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::{TransferMode, TransferSpec};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Runs `$body(orbit_options)` once on SQLite and once on PostgreSQL.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (url, _dir) = super::sqlite_url();
                super::$name(super::orbit_options(&url)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let url = super::postgres_url().await;
                super::$name(super::orbit_options(&url)).await;
            }
        }
    )*};
}

on_both_stores!(
    jobs_run_end_to_end_with_an_intact_audit_log,
    the_same_idempotency_key_makes_one_job,
    priorities_order_leases_and_waiting_jobs_age,
    expired_leases_are_taken_over_and_the_old_holder_cannot_complete,
    cancel_and_retry,
    endpoints_limit_concurrent_transfers,
    batches_lease_within_limits_and_record_each_success,
    concurrent_leasers_share_an_endpoint_limit,
    chains_run_hop_after_hop,
    credentials_are_sealed_and_keys_rotate,
    templates_turn_matching_events_into_jobs,
    permanent_errors_go_straight_to_dead_letter,
    a_job_whose_worker_dies_on_its_last_attempt_goes_dead,
    a_job_that_keeps_losing_its_worker_stops_being_leased,
    huge_priorities_neither_overflow_nor_stall_the_queue,
    job_listings_page_newest_first_by_state,
);

async fn job_listings_page_newest_first_by_state(options: OrbitOptions) {
    let orbit = Orbit::open(options).await.unwrap();
    let mut ids = Vec::new();
    for index in 0..6 {
        let spec = file_spec("a", &format!("f{index}"), "b", "{filename}");
        ids.push(orbit.submit(&JobRequest::new(spec)).await.unwrap());
    }
    orbit.cancel(ids[1]).await.unwrap();
    orbit.cancel(ids[4]).await.unwrap();
    let list = |state: Option<JobState>, limit: i64, offset: i64, before_id: Option<i64>| {
        let orbit = orbit.clone();
        async move {
            let filter = JobFilter {
                state,
                limit,
                offset,
                before_id,
                ..JobFilter::default()
            };
            let jobs = orbit.jobs(&filter).await.unwrap();
            jobs.iter().map(|job| job.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, 2, 0, None).await, vec![ids[5], ids[4]]);
    assert_eq!(list(None, 2, 0, Some(ids[4])).await, vec![ids[3], ids[2]]);
    assert_eq!(list(None, 2, 2, None).await, vec![ids[3], ids[2]]);
    let cancelled = Some(JobState::Cancelled);
    assert_eq!(list(cancelled, 10, 0, None).await, vec![ids[4], ids[1]]);
    assert_eq!(list(cancelled, 10, 0, Some(ids[4])).await, vec![ids[1]]);
    let queued = Some(JobState::Queued);
    assert_eq!(
        list(queued, 10, 0, Some(ids[5])).await,
        vec![ids[3], ids[2], ids[0]]
    );
}

fn file_spec(source: &str, path: &str, destination: &str, template: &str) -> TransferSpec {
    TransferSpec {
        verify: true,
        ..TransferSpec::file(
            source,
            path,
            destination,
            PathTemplate::parse(template).unwrap(),
        )
    }
}

/// An orbit with two local endpoints `src` (holding `files`) and `dst`.
async fn orbit_with_local_endpoints(
    options: OrbitOptions,
    files: &[&str],
) -> (Orbit, PathBuf, PathBuf) {
    let orbit = Orbit::open(options).await.unwrap();
    let src = endpoint(Kind::Local, "src");
    let dst = endpoint(Kind::Local, "dst");
    for file in files {
        let path = local_root(&src).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("contents of {file}")).unwrap();
    }
    orbit.put_endpoint(&src, 4).await.unwrap();
    orbit.put_endpoint(&dst, 4).await.unwrap();
    (orbit, local_root(&src), local_root(&dst))
}

async fn jobs_run_end_to_end_with_an_intact_audit_log(options: OrbitOptions) {
    let (orbit, _, dst) = orbit_with_local_endpoints(options, &["in/a.txt", "in/b.txt"]).await;
    let workers = orbit.start_workers(2);
    let mut ids = Vec::new();
    for name in ["a.txt", "b.txt"] {
        let spec = file_spec("src", &format!("in/{name}"), "dst", "out/{filename}");
        ids.push(orbit.submit(&JobRequest::new(spec)).await.unwrap());
    }
    for id in &ids {
        let job = orbit.wait(*id, WAIT).await.unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!((job.attempts, job.files), (1, 1), "{job:?}");
    }
    workers.shutdown().await;
    assert_eq!(
        std::fs::read_to_string(dst.join("out/a.txt")).unwrap(),
        "contents of in/a.txt"
    );

    let log = orbit.audit_log(100).await.unwrap();
    let actions: Vec<&str> = log.iter().rev().map(|r| r.action.as_str()).collect();
    for expected in [
        "endpoint.created",
        "job.submitted",
        "job.started",
        "job.succeeded",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert_eq!(orbit.verify_audit_log().await.unwrap(), None);
}

async fn the_same_idempotency_key_makes_one_job(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let mut request = JobRequest::new(file_spec("src", "a.txt", "dst", "{filename}"));
    request.idempotency_key = Some("event-42".into());
    let first = orbit.submit(&request).await.unwrap();
    let second = orbit.submit(&request).await.unwrap();
    assert_eq!(first, second);
    let all = orbit.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
}

async fn priorities_order_leases_and_waiting_jobs_age(mut options: OrbitOptions) {
    options.aging = Duration::from_secs(3600);
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let submit = |priority: i64| {
        let mut request = JobRequest::new(file_spec("src", "a.txt", "dst", "{filename}"));
        request.priority = priority;
        let orbit = orbit.clone();
        async move { orbit.submit(&request).await.unwrap() }
    };
    let low = submit(0).await;
    let high = submit(5).await;
    let store = orbit.store();
    let lease = Duration::from_secs(30);
    let first = store
        .lease("w", lease, Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, high, "the higher priority runs first");
    let second = store
        .lease("w", lease, Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, low);

    // With aging of 1 ms per point, a job waiting longer than 5 ms beats a fresh priority 5.
    let old_low = submit(0).await;
    tokio::time::sleep(Duration::from_millis(20)).await; // the waiting being measured
    let _fresh_high = submit(5).await;
    let aged = store
        .lease("w", lease, Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(aged.id, old_low, "aging lets a low priority job overtake");
}

async fn expired_leases_are_taken_over_and_the_old_holder_cannot_complete(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let id = orbit
        .submit(&JobRequest::new(file_spec(
            "src",
            "a.txt",
            "dst",
            "{filename}",
        )))
        .await
        .unwrap();
    let store = orbit.store();
    let aging = Duration::from_secs(60);
    let ghost = store
        .lease("ghost", Duration::from_millis(1), aging)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ghost.id, id);
    // The 1 ms lease lapses, then another worker takes the job.
    let taken = lease_when_runnable(store, "heir", Duration::from_secs(30)).await;
    assert_eq!((taken.id, taken.attempts), (id, 2));
    assert_eq!(
        store
            .heartbeat(id, "ghost", Duration::from_secs(30))
            .await
            .unwrap(),
        LeaseStatus::Lost
    );
    assert!(
        !store.complete(id, "ghost", 0, 0).await.unwrap(),
        "a lost lease must not complete"
    );
    assert!(store.complete(id, "heir", 1, 1).await.unwrap());
    assert_eq!(orbit.job(id).await.unwrap().state, JobState::Succeeded);
}

async fn cancel_and_retry(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let request = JobRequest::new(file_spec("src", "a.txt", "dst", "{filename}"));
    let queued = orbit.submit(&request).await.unwrap();
    assert_eq!(orbit.cancel(queued).await.unwrap(), JobState::Cancelled);

    let leased = orbit.submit(&request).await.unwrap();
    let store = orbit.store();
    let job = store
        .lease("w", Duration::from_secs(30), Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, leased);
    assert_eq!(orbit.cancel(leased).await.unwrap(), JobState::Leased);
    assert_eq!(
        store
            .heartbeat(leased, "w", Duration::from_secs(30))
            .await
            .unwrap(),
        LeaseStatus::CancelRequested
    );
    assert!(store.cancelled(leased, "w").await.unwrap());
    assert_eq!(orbit.job(leased).await.unwrap().state, JobState::Cancelled);

    let err = orbit
        .retry(
            orbit
                .submit(&JobRequest::new(file_spec(
                    "src",
                    "a.txt",
                    "dst",
                    "x/{filename}",
                )))
                .await
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("Queued"), "{err}");
    orbit.retry(queued).await.unwrap();
    let workers = orbit.start_workers(1);
    let job = orbit.wait(queued, WAIT).await.unwrap();
    workers.shutdown().await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
}

async fn endpoints_limit_concurrent_transfers(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let narrow = endpoint(Kind::Local, "narrow");
    orbit.put_endpoint(&narrow, 1).await.unwrap();
    let request = JobRequest::new(file_spec("src", "a.txt", "narrow", "{filename}"));
    let first = orbit.submit(&request).await.unwrap();
    let _second = orbit.submit(&request).await.unwrap();
    let store = orbit.store();
    let (lease, aging) = (Duration::from_secs(30), Duration::from_secs(60));
    let job = store.lease("w1", lease, aging).await.unwrap().unwrap();
    assert_eq!(job.id, first);
    assert!(
        store.lease("w2", lease, aging).await.unwrap().is_none(),
        "narrow allows one at a time"
    );
    assert!(store.complete(first, "w1", 0, 0).await.unwrap());
    assert!(store.lease("w2", lease, aging).await.unwrap().is_some());
}

async fn batches_lease_within_limits_and_record_each_success(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let narrow = endpoint(Kind::Local, "narrow");
    orbit.put_endpoint(&narrow, 2).await.unwrap();
    let src = orbit.endpoint("src").await.unwrap();
    orbit.put_endpoint(&src, 10).await.unwrap();
    let submit = |destination: &str, priority: i64, hop: bool| {
        let mut request = JobRequest::new(file_spec("src", "a.txt", destination, "{filename}"));
        request.priority = priority;
        if hop {
            request.next_hops = vec![file_spec("dst", "a.txt", "narrow", "hop/{filename}")];
        }
        let orbit = orbit.clone();
        async move { orbit.submit(&request).await.unwrap() }
    };
    let urgent = [submit("dst", 5, false).await, submit("dst", 5, false).await];
    let chained = submit("dst", 1, true).await;
    let limited = [
        submit("narrow", 0, false).await,
        submit("narrow", 0, false).await,
        submit("narrow", 0, false).await,
    ];
    let store = orbit.store();
    let (lease, aging) = (Duration::from_secs(30), Duration::from_secs(3600));
    let owners: Vec<String> = (0..8).map(|n| format!("w{n}")).collect();
    let batch = store.lease_many(&owners, lease, aging).await.unwrap();
    let leased: Vec<(i64, Option<&str>)> = batch
        .iter()
        .map(|job| (job.id, job.lease_owner.as_deref()))
        .collect();
    assert_eq!(
        leased,
        vec![
            (urgent[0], Some("w0")),
            (urgent[1], Some("w1")),
            (chained, Some("w2")),
            (limited[0], Some("w3")),
            (limited[1], Some("w4")),
        ],
        "most urgent first, one per owner, and narrow's limit of 2 holds inside the batch"
    );
    let success = |id: i64, worker: &str| Completion {
        id,
        worker: worker.to_string(),
        bytes: 7,
        files: 1,
    };
    let recorded = store
        .complete_many(&[
            success(urgent[0], "w0"),
            success(urgent[1], "ghost"),
            success(chained, "w2"),
            success(limited[0], "w3"),
        ])
        .await
        .unwrap();
    assert_eq!(
        recorded,
        vec![true, false, true, true],
        "only the lease holder records a success"
    );
    let job = orbit.job(urgent[0]).await.unwrap();
    assert_eq!(
        (job.state, job.bytes, job.files),
        (JobState::Succeeded, 7, 1)
    );
    assert_eq!(orbit.job(urgent[1]).await.unwrap().state, JobState::Leased);
    // The same job reported by a former holder and by its holder: the holder's counts.
    let recorded = store
        .complete_many(&[success(urgent[1], "ghost"), success(urgent[1], "w1")])
        .await
        .unwrap();
    assert_eq!(recorded, vec![false, true]);
    assert_eq!(
        orbit.job(urgent[1]).await.unwrap().state,
        JobState::Succeeded
    );
    // The chain's next hop was queued with the success and outranks the last narrow job.
    let chain = orbit.chain_of(chained).await.unwrap();
    assert_eq!(chain.len(), 2, "{chain:?}");
    let next = store.lease_many(&["x", "y"], lease, aging).await.unwrap();
    let next: Vec<i64> = next.iter().map(|job| job.id).collect();
    assert_eq!(
        next,
        vec![chain[1].id],
        "narrow has one free slot and the hop takes it"
    );
    assert_eq!(orbit.verify_audit_log().await.unwrap(), None);
    let started = orbit
        .audit_log(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.action == "job.started")
        .count();
    assert_eq!(started, 6, "one audit record per leased job");
}

/// Four stores on one database (as four worker nodes) lease batches at the same moment:
/// together they never hold more of an endpoint than its limit.
async fn concurrent_leasers_share_an_endpoint_limit(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options.clone(), &["a.txt"]).await;
    let narrow = endpoint(Kind::Local, "narrow");
    orbit.put_endpoint(&narrow, 3).await.unwrap();
    let src = orbit.endpoint("src").await.unwrap();
    orbit.put_endpoint(&src, 100).await.unwrap();
    for _ in 0..16 {
        let request = JobRequest::new(file_spec("src", "a.txt", "narrow", "{filename}"));
        orbit.submit(&request).await.unwrap();
    }
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(Store::open(&options.store_url).await.unwrap());
    }
    let (lease, aging) = (Duration::from_secs(30), Duration::from_secs(60));
    for round in 0..4 {
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(nodes.len()));
        let leasers: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(node, store)| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    let owners: Vec<String> = (0..4)
                        .map(|slot| format!("n{node}-r{round}-w{slot}"))
                        .collect();
                    start.wait().await;
                    store.lease_many(&owners, lease, aging).await.unwrap()
                })
            })
            .collect();
        let mut leased = Vec::new();
        for leaser in leasers {
            leased.extend(leaser.await.unwrap());
        }
        assert_eq!(
            leased.len(),
            3,
            "round {round}: narrow allows 3: {leased:?}"
        );
        let done: Vec<Completion> = leased
            .iter()
            .map(|job| Completion {
                id: job.id,
                worker: job.lease_owner.clone().unwrap(),
                bytes: 0,
                files: 0,
            })
            .collect();
        let recorded = nodes[round].complete_many(&done).await.unwrap();
        assert!(recorded.iter().all(|&ok| ok));
    }
    assert_eq!(orbit.verify_audit_log().await.unwrap(), None);
}

/// The store refuses the first two attempts to record a move's success (a trigger raising
/// an error, PostgreSQL only): the worker retries the write while its lease lasts, so the
/// job succeeds once instead of running again on a source that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_is_recorded_through_passing_store_errors() {
    let url = postgres_url().await;
    let (orbit, src, dst) = orbit_with_local_endpoints(orbit_options(&url), &["m.txt"]).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for statement in [
        "CREATE SEQUENCE refused_completions",
        "CREATE FUNCTION refuse_first_completions() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
             IF nextval('refused_completions') <= 2 THEN \
                 RAISE EXCEPTION 'injected: the store refused the write'; \
             END IF; \
             RETURN NEW; \
         END $$",
        "CREATE TRIGGER refuse_first_completions BEFORE UPDATE ON jobs FOR EACH ROW \
         WHEN (NEW.state = 'succeeded') EXECUTE FUNCTION refuse_first_completions()",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let mut spec = file_spec("src", "m.txt", "dst", "{filename}");
    spec.mode = TransferMode::Move;
    spec.verify = false;
    let id = orbit.submit(&JobRequest::new(spec)).await.unwrap();
    let workers = orbit.start_workers(1);
    let job = orbit.wait(id, WAIT).await.unwrap();
    workers.shutdown().await;
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Succeeded, 1),
        "{job:?}"
    );
    let refused: i64 = sqlx::query_scalar("SELECT last_value FROM refused_completions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        refused >= 3,
        "the trigger refused {} writes",
        refused.min(2)
    );
    pool.close().await;
    assert!(!src.join("m.txt").exists(), "moved");
    assert_eq!(
        std::fs::read(dst.join("m.txt")).unwrap(),
        b"contents of m.txt"
    );
}

async fn chains_run_hop_after_hop(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["in/report.csv"]).await;
    let archive = endpoint(Kind::Local, "archive");
    orbit.put_endpoint(&archive, 4).await.unwrap();
    let mut request = JobRequest::new(file_spec(
        "src",
        "in/report.csv",
        "dst",
        "primary/{filename}",
    ));
    request.next_hops = vec![file_spec(
        "dst",
        "primary/report.csv",
        "archive",
        "{year}/{filename}",
    )];
    let first = orbit.submit(&request).await.unwrap();
    let workers = orbit.start_workers(2);
    orbit.wait(first, WAIT).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let chain = loop {
        let chain = orbit.chain_of(first).await.unwrap();
        if chain.len() == 2 && chain[1].state.is_terminal() {
            break chain;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chain stuck: {chain:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    workers.shutdown().await;
    assert!(
        chain.iter().all(|job| job.state == JobState::Succeeded),
        "{chain:?}"
    );
    assert_eq!(chain[1].parent_id, Some(first));
    assert_eq!(chain[1].chain_id, first);
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(local_root(&archive).join(year).join("report.csv").is_file());
}

async fn credentials_are_sealed_and_keys_rotate(options: OrbitOptions) {
    let password = "sealed-Pa55-canary-9";
    let orbit = Orbit::open(options.clone()).await.unwrap();
    let mut sftp_config = common::sftp_config("x");
    sftp_config.auth = file_orbit::endpoint::SftpAuth::Password {
        password: Secret::new(password),
    };
    let sftp = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "partner".into(),
        config: EndpointConfig::Sftp(sftp_config),
    };
    orbit.put_endpoint(&sftp, 2).await.unwrap();

    let listed = serde_json::to_string(&orbit.endpoints().await.unwrap()).unwrap();
    assert!(
        !listed.contains(password) && listed.contains("***"),
        "{listed}"
    );
    let audit = serde_json::to_string(&orbit.audit_log(100).await.unwrap()).unwrap();
    assert!(!audit.contains(password), "{audit}");
    if let Some(path) = options.store_url.strip_prefix("sqlite://") {
        let raw = std::fs::read(path).unwrap();
        let wal = std::fs::read(format!("{path}-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "plaintext in the db file"
            );
        }
    }
    let read = orbit.endpoint("partner").await.unwrap();
    let EndpointConfig::Sftp(read) = read.config else {
        panic!()
    };
    let file_orbit::endpoint::SftpAuth::Password { password: read } = read.auth else {
        panic!()
    };
    assert_eq!(read.expose(), password);

    // Rotate to a new key, keeping the old one for reading; then the old key can go.
    let new_key = file_orbit::engine::Keyring::generate_key();
    let rotated = OrbitOptions {
        master_key: Some(new_key.clone()),
        previous_keys: vec![options.master_key.clone().unwrap()],
        ..options.clone()
    };
    let orbit = Orbit::open(rotated).await.unwrap();
    assert_eq!(orbit.rotate_keys().await.unwrap(), 1);
    let only_new = OrbitOptions {
        master_key: Some(new_key),
        previous_keys: vec![],
        ..options.clone()
    };
    let orbit = Orbit::open(only_new).await.unwrap();
    assert!(orbit.endpoint("partner").await.is_ok());
    let only_old = Orbit::open(options).await.unwrap();
    let err = only_old.endpoint("partner").await.unwrap_err();
    assert!(
        err.message.contains("not among the configured keys"),
        "{err}"
    );
}

async fn templates_turn_matching_events_into_jobs(options: OrbitOptions) {
    let (orbit, _, dst) =
        orbit_with_local_endpoints(options, &["incoming/day 1/sales.csv", "incoming/notes.txt"])
            .await;
    let template = TransferTemplate {
        priority: 3,
        ..TransferTemplate::new(
            "csv-to-dst",
            Matcher {
                min_size: Some(1),
                ..Matcher::new("src", "incoming/**/*.csv")
            },
            file_spec("src", "", "dst", "csv/{year}/{filename}"),
        )
    };
    orbit.put_template(&template).await.unwrap();
    assert_eq!(orbit.templates().await.unwrap().len(), 1);
    let event = |path: &str| FileEvent {
        endpoint: "src".into(),
        path: path.into(),
        size: Some(10),
        modified: None,
        ..FileEvent::default()
    };
    assert!(
        orbit
            .submit_matching(&event("incoming/notes.txt"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        orbit
            .submit_matching(&FileEvent {
                endpoint: "dst".into(),
                ..event("incoming/x.csv")
            })
            .await
            .unwrap()
            .is_empty()
    );
    let ids = orbit
        .submit_matching(&event("incoming/day 1/sales.csv"))
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let workers = orbit.start_workers(1);
    let job = orbit.wait(ids[0], WAIT).await.unwrap();
    workers.shutdown().await;
    assert_eq!(
        (job.state, job.priority, job.template.as_deref()),
        (JobState::Succeeded, 3, Some("csv-to-dst"))
    );
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(dst.join("csv").join(year).join("sales.csv").is_file());

    let bad = TransferTemplate {
        matcher: Matcher {
            path_glob: "incoming/[".into(),
            ..template.matcher.clone()
        },
        ..template
    };
    let err = orbit.put_template(&bad).await.unwrap_err();
    assert_eq!(err.field.as_deref(), Some("matcher.path_glob"), "{err}");
}

async fn permanent_errors_go_straight_to_dead_letter(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &[]).await;
    let id = orbit
        .submit(&JobRequest::new(file_spec(
            "src",
            "missing.txt",
            "dst",
            "{filename}",
        )))
        .await
        .unwrap();
    let workers = orbit.start_workers(1);
    let job = orbit.wait(id, WAIT).await.unwrap();
    workers.shutdown().await;
    assert_eq!((job.state, job.attempts), (JobState::Dead, 1), "{job:?}");
    assert_eq!(job.last_error_kind.as_deref(), Some("NotFound"), "{job:?}");
    assert!(job.last_error.unwrap().contains("not found"));
}

async fn a_job_whose_worker_dies_on_its_last_attempt_goes_dead(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let mut request = JobRequest::new(file_spec("src", "a.txt", "dst", "{filename}"));
    request.retry.max_attempts = 2;
    let id = orbit.submit(&request).await.unwrap();
    let store = orbit.store();
    let (short, aging) = (Duration::from_millis(1), Duration::from_secs(60));
    // Two workers in turn "crash" holding the lease: attempts 1 and 2 are lost.
    for attempt in 1..=2 {
        let job = lease_when_runnable(store, "doomed", short).await;
        assert_eq!(job.attempts, attempt);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let job = loop {
        assert!(store.lease("next", short, aging).await.unwrap().is_none());
        let job = orbit.job(id).await.unwrap();
        if job.state == JobState::Dead {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::task::yield_now().await;
    };
    assert_eq!(
        job.last_error_kind.as_deref(),
        Some("WorkerLost"),
        "{job:?}"
    );
    let actions: Vec<String> = orbit
        .audit_log(20)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert!(actions.contains(&"job.dead".to_string()), "{actions:?}");
}

/// Leases the next job as `worker` with `lease`, polling (bounded) until one is runnable.
async fn lease_when_runnable(
    store: &Store,
    worker: &str,
    lease: Duration,
) -> file_orbit::engine::Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(job) = store
            .lease(worker, lease, Duration::from_secs(60))
            .await
            .unwrap()
        {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{worker}: nothing leased"
        );
        tokio::task::yield_now().await;
    }
}

/// A job whose workers keep dying (a poison job: it may be what kills them) is dead after
/// `limits.max_lost_attempts` lost attempts, with the reason, though attempts remain.
async fn a_job_that_keeps_losing_its_worker_stops_being_leased(options: OrbitOptions) {
    let (orbit, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let mut request = JobRequest::new(file_spec("src", "a.txt", "dst", "{filename}"));
    request.retry.max_attempts = 10;
    let id = orbit.submit(&request).await.unwrap();
    let store = orbit.store();
    let short = Duration::from_millis(1);
    let max_lost = Limits::default().max_lost_attempts as i64;
    // Each "crashes" holding the lease: the next lease finds it expired.
    for attempt in 1..=max_lost {
        let job = lease_when_runnable(store, &format!("crashing-{attempt}"), short).await;
        assert_eq!((job.id, job.attempts), (id, attempt));
        assert_eq!(job.lost_attempts, attempt - 1);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let job = loop {
        let leased = store
            .lease("next", short, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(leased.is_none(), "leased again: {leased:?}");
        let job = orbit.job(id).await.unwrap();
        if job.state == JobState::Dead {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::task::yield_now().await;
    };
    assert_eq!(job.last_error_kind.as_deref(), Some("WorkerLost"));
    let reason = job.last_error.unwrap_or_default();
    assert!(
        reason.contains(&format!("lost {max_lost} times")) && reason.contains("max_lost_attempts"),
        "{reason}"
    );
    assert_eq!(job.lost_attempts, max_lost);
}

/// Priorities are bounded at submission; and where the limit allows the extremes, the
/// aged priority (priority + waited / aging) cannot overflow: on PostgreSQL it once made
/// every lease fail with `bigint out of range`, stalling the whole queue.
async fn huge_priorities_neither_overflow_nor_stall_the_queue(options: OrbitOptions) {
    let unbounded = OrbitOptions {
        limits: Limits {
            max_priority: i64::MAX,
            ..Limits::default()
        },
        ..options.clone()
    };
    let (orbit, _, _) = orbit_with_local_endpoints(unbounded, &["a.txt"]).await;
    let submit = |priority: i64| {
        let mut request = JobRequest::new(file_spec("src", "a.txt", "dst", "{filename}"));
        request.priority = priority;
        let orbit = orbit.clone();
        async move { orbit.submit(&request).await }
    };
    let top = submit(i64::MAX).await.unwrap();
    let bottom = submit(-i64::MAX).await.unwrap();
    let plain = submit(0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await; // the waiting that ages them
    let store = orbit.store();
    let aging = Duration::from_millis(1);
    let mut order = Vec::new();
    for _ in 0..3 {
        let job = store
            .lease("w", Duration::from_secs(30), aging)
            .await
            .unwrap();
        order.push(job.expect("a runnable job").id);
    }
    assert_eq!(order, [top, plain, bottom]);

    // With the default limits such a priority is refused, naming the field.
    let (bounded, _, _) = orbit_with_local_endpoints(options, &["a.txt"]).await;
    let mut request = JobRequest::new(file_spec("src", "a.txt", "dst", "{filename}"));
    request.priority = i64::MAX;
    let err = bounded.submit(&request).await.unwrap_err();
    assert_eq!(err.field.as_deref(), Some("priority"), "{err}");
    assert!(err.to_string().contains(": priority: "), "{err}");
}

/// A tree copy to SMB reports, on the job, the names the share holds under another name (it
/// used to rename them silently), and those are the names that arrive; SFTP (rclone v1.76)
/// keeps every name, and its job reports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_names_are_reported_on_the_job() {
    let (url, _dir) = sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    let src = endpoint(Kind::Local, "src");
    let root = local_root(&src);
    std::fs::create_dir_all(root.join("in")).unwrap();
    for name in [
        "in/new\nline.txt",
        "in/a:b?.txt",
        "in/plain.txt",
        "skipped\t.tmp",
    ] {
        std::fs::write(root.join(name), "x").unwrap();
    }
    orbit.put_endpoint(&src, 4).await.unwrap();
    let sftp_root = common::unique("renamed");
    let smb_root = common::unique("renamed");
    for (name, config) in [
        (
            "sftp",
            EndpointConfig::Sftp(common::sftp_config(&sftp_root)),
        ),
        ("smb", EndpointConfig::Smb(common::smb_config(&smb_root))),
    ] {
        let endpoint = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: name.into(),
            config,
        };
        orbit.put_endpoint(&endpoint, 4).await.unwrap();
    }
    let workers = orbit.start_workers(2);
    let mut expected = Vec::new();
    for (destination, warnings) in [
        ("sftp", vec![]),
        (
            "smb",
            vec![
                r#""in/a:b?.txt" arrives as "in/a：b？.txt""#,
                r#""in/new\nline.txt" arrives as "in/new␊line.txt""#,
            ],
        ),
    ] {
        let mut spec = TransferSpec::tree("src", "", destination, PathTemplate::parse("").unwrap());
        spec.filters.exclude = vec!["*.tmp".into()];
        let id = orbit.submit(&JobRequest::new(spec)).await.unwrap();
        expected.push((id, warnings));
    }
    for (id, warnings) in expected {
        let job = orbit.wait(id, WAIT).await.unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!(job.warnings, warnings, "{job:?}");
    }
    workers.shutdown().await;
    let names = |dir: PathBuf| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sftp_in = PathBuf::from(common::env("SFTP_HOME"))
        .join(&sftp_root)
        .join("in");
    assert_eq!(names(sftp_in), ["a:b?.txt", "new\nline.txt", "plain.txt"]);
    let smb_in = PathBuf::from(common::env("SMB_SHARE_DIR"))
        .join(&smb_root)
        .join("in");
    assert_eq!(names(smb_in), ["a：b？.txt", "new␊line.txt", "plain.txt"]);
}
