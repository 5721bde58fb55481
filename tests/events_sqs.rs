//! S3 notifications through SQS on the real moto server: uploads (by rclone) become
//! events, events run the matching template's transfer, redeliveries and copies make one
//! job, SNS-wrapped bodies work, poison messages end as dead events without stopping the
//! consumer, encoded keys decode, a broken store leaves messages on the queue (and the
//! queue's redrive policy moves them to its DLQ), and visibility is extended while a slow
//! ingest runs. Every test has its own bucket and queue (moto slows as a queue grows).

mod common;

use common::moto::{create_queue, moto_sqs_source, notified_queue, queue_arn};
use common::{Kind, endpoint, ensure_bucket, env, moto_s3, orbit_options, rclone, unique};
use file_orbit::endpoint::{AwsCredentials, Endpoint, EndpointConfig, S3Config};
use file_orbit::engine::{
    EventRecord, EventState, Job, JobFilter, JobState, Matcher, Orbit, OrbitOptions,
    TransferTemplate, Workers,
};
use file_orbit::events::sqs::aws_sdk_sqs::types::{Message, QueueAttributeName};
use file_orbit::events::sqs::{SqsConsumer, SqsSource, SqsStats, aws_sdk_sqs};
use file_orbit::path_template::PathTemplate;
use file_orbit::transfer::TransferSpec;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(60);
const TEMPLATE: &str = "s3-to-dst";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// An orbit with an S3 endpoint `s3in` (a fresh bucket, prefix `in`), a local endpoint
/// `dst`, a template copying every object under the prefix to `dst` at the same relative
/// path, a fresh queue receiving the bucket's ObjectCreated notifications, and workers.
struct Fixture {
    orbit: Orbit,
    source: SqsSource,
    sqs: aws_sdk_sqs::Client,
    bucket: String,
    dst: PathBuf,
    workers: Option<Workers>,
    queues: Vec<String>,
    uploads: tempfile::TempDir,
}

impl Fixture {
    async fn new(options: OrbitOptions) -> Fixture {
        Fixture::with_queue_attributes(options, &[]).await
    }

    async fn with_queue_attributes(
        options: OrbitOptions,
        attributes: &[(QueueAttributeName, String)],
    ) -> Fixture {
        init_tracing();
        let orbit = Orbit::open(options).await.unwrap();
        let bucket = unique("fo-sqs");
        let s3 = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "s3in".into(),
            config: EndpointConfig::S3(moto_s3(&bucket, "in")),
        };
        ensure_bucket(&s3);
        orbit.put_endpoint(&s3, 4).await.unwrap();
        let dst = endpoint(Kind::Local, "dst");
        orbit.put_endpoint(&dst, 4).await.unwrap();
        let EndpointConfig::Local(local) = &dst.config else {
            unreachable!()
        };
        orbit
            .put_template(&TransferTemplate::new(
                TEMPLATE,
                Matcher::new("s3in", "**"),
                TransferSpec {
                    verify: true,
                    ..TransferSpec::file(
                        "s3in",
                        "",
                        "dst",
                        PathTemplate::parse("{relpath}").unwrap(),
                    )
                },
            ))
            .await
            .unwrap();

        let mut source = moto_sqs_source("s3in");
        source.visibility_timeout_seconds = 30;
        let sqs = source.client().await;
        let mut fixture = Fixture {
            orbit: orbit.clone(),
            source,
            sqs,
            bucket: bucket.clone(),
            dst: local.root.clone(),
            workers: None,
            queues: Vec::new(),
            uploads: tempfile::tempdir().unwrap(),
        };
        let queue_url = notified_queue(&fixture.sqs, &bucket, &bucket, attributes).await;
        fixture.queues.push(queue_url.clone());
        fixture.source.queue_url = queue_url;
        fixture.workers = Some(orbit.start_workers(2));
        fixture
    }

    async fn create_queue(
        &mut self,
        name: &str,
        attributes: &[(QueueAttributeName, String)],
    ) -> String {
        let url = create_queue(&self.sqs, name, attributes).await;
        self.queues.push(url.clone());
        url
    }

    async fn start(&self) -> SqsConsumer {
        self.orbit
            .start_sqs_source(self.source.clone())
            .await
            .unwrap()
    }

    /// Uploads `bytes` to `key` (a full key in the bucket) with rclone.
    async fn upload(&self, key: &str, bytes: &[u8]) {
        let local = self.uploads.path().join(unique("up"));
        std::fs::write(&local, bytes).unwrap();
        let bucket_only = Endpoint {
            placement: Default::default(),
            bandwidth: None,
            name: "bucket".into(),
            config: EndpointConfig::S3(S3Config {
                prefix: String::new(),
                ..moto_s3(&self.bucket, "")
            }),
        };
        let input = json!({
            "srcFs": self.uploads.path(),
            "srcRemote": local.file_name().unwrap().to_str().unwrap(),
            "dstFs": bucket_only.to_rclone(rclone(), "").unwrap(),
            "dstRemote": key,
        });
        rclone()
            .rpc_async("operations/copyfile", input)
            .await
            .unwrap();
    }

    async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.source.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// One receive from `queue` without the consumer: up to 10 messages, waiting up to 1 s.
    async fn receive(&self, queue: &str) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages()
            .to_vec()
    }

    /// Receives (without the consumer) the next message holding records, deleting the
    /// `s3:TestEvent` on the way.
    async fn receive_records(&self) -> Message {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            for message in &self.receive(&self.source.queue_url).await {
                if message.body().unwrap_or_default().contains("s3:TestEvent") {
                    self.delete(message).await;
                } else {
                    return message.clone();
                }
            }
        }
        panic!("no S3 records arrived within {WAIT:?}");
    }

    async fn delete(&self, message: &Message) {
        self.sqs
            .delete_message()
            .queue_url(&self.source.queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }

    /// Messages on the queue, visible and in flight.
    async fn messages_left(&self) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.source.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        attributes
            .attributes()
            .unwrap()
            .values()
            .map(|v| v.parse::<u64>().unwrap())
            .sum()
    }

    async fn sqs_events(&self) -> Vec<EventRecord> {
        let mut events: Vec<_> = self
            .orbit
            .events(1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.source == "sqs")
            .collect();
        events.sort_by_key(|e| e.id);
        events
    }

    /// Waits until `count` jobs exist and all of them have ended; all must succeed.
    async fn jobs_succeeded(&self, count: usize) -> Vec<Job> {
        let deadline = Instant::now() + WAIT;
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        let jobs = loop {
            ticker.tick().await;
            let jobs = self.orbit.jobs(&JobFilter::default()).await.unwrap();
            if jobs.len() >= count {
                break jobs;
            }
            assert!(Instant::now() < deadline, "{} of {count} jobs", jobs.len());
        };
        assert_eq!(jobs.len(), count, "{jobs:?}");
        let mut done = Vec::new();
        for job in jobs {
            let job = self.orbit.wait(job.id, WAIT).await.unwrap();
            assert_eq!(job.state, JobState::Succeeded, "{job:?}");
            assert_eq!(job.template.as_deref(), Some(TEMPLATE));
            done.push(job);
        }
        done
    }

    fn assert_delivered(&self, path: &str, bytes: &[u8]) {
        let got = std::fs::read(self.dst.join(path))
            .unwrap_or_else(|err| panic!("{path} at the destination: {err}"));
        assert!(got == bytes, "{path}: {} bytes differ", got.len());
    }

    async fn finish(mut self, consumer: SqsConsumer) {
        consumer.shutdown().await;
        if let Some(workers) = self.workers.take() {
            workers.shutdown().await;
        }
        for queue in &self.queues {
            let _ = self.sqs.delete_queue().queue_url(queue).send().await;
        }
    }
}

/// Deterministic test bytes.
fn bytes(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn stats_settled(stats: &SqsStats) -> bool {
    stats.failed == 0 && stats.receive_errors == 0
}

async fn an_upload_runs_the_template(options: OrbitOptions) {
    let fx = Fixture::new(options).await;
    let consumer = fx.start().await;
    let report = bytes(1, 300 * 1024);
    let small = bytes(2, 10);
    fx.upload("in/reports/day 1.csv", &report).await;
    fx.upload("in/b.txt", &small).await;
    fx.upload("elsewhere/c.txt", b"outside the prefix").await;

    let stats = consumer
        .wait_for(WAIT, |s| s.ingested >= 3 && s.deleted >= 3)
        .await
        .unwrap();
    assert_eq!((stats.dead, stats.duplicates), (0, 0), "{stats:?}");
    assert!(stats_settled(&stats), "{stats:?}");
    fx.jobs_succeeded(2).await;
    fx.assert_delivered("reports/day 1.csv", &report);
    fx.assert_delivered("b.txt", &small);

    let events = fx.sqs_events().await;
    assert_eq!(events.len(), 3, "{events:?}");
    for event in &events {
        assert_eq!(event.state, EventState::Processed, "{event:?}");
        let key = event.payload["payload"]["key"].as_str().unwrap();
        if key == "elsewhere/c.txt" {
            assert!(event.job_ids.is_empty(), "{event:?}");
            let ignored = event.payload["payload"]["ignored"].as_str().unwrap();
            assert!(ignored.contains("outside"), "{ignored}");
        } else {
            assert_eq!(event.matched_templates, [TEMPLATE], "{event:?}");
            assert_eq!(event.job_ids.len(), 1, "{event:?}");
            assert!(event.payload["file"]["size"].as_u64().unwrap() > 0);
        }
    }
    // Everything deleted once stored (the TestEvent included).
    consumer
        .wait_for(WAIT, |s| {
            s.deleted >= 3 + s.test_events && s.test_events >= 1
        })
        .await
        .unwrap();
    assert_eq!(fx.messages_left().await, 0);
    fx.finish(consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_runs_the_template_sqlite() {
    let (url, _dir) = common::sqlite_url();
    an_upload_runs_the_template(orbit_options(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_runs_the_template_postgres() {
    let url = common::postgres_url().await;
    an_upload_runs_the_template(orbit_options(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_makes_one_job() {
    let (url, _dir) = common::sqlite_url();
    let fx = Fixture::new(orbit_options(&url)).await;
    let data = bytes(3, 1000);
    fx.upload("in/once.txt", &data).await;
    let original = fx.receive_records().await;
    // A copy of the body, and the original made visible again: two deliveries.
    fx.send(original.body().unwrap()).await;
    fx.sqs
        .change_message_visibility()
        .queue_url(&fx.source.queue_url)
        .receipt_handle(original.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();

    let consumer = fx.start().await;
    let stats = consumer
        .wait_for(WAIT, |s| s.ingested + s.duplicates >= 2 && s.deleted >= 2)
        .await
        .unwrap();
    assert_eq!((stats.ingested, stats.duplicates), (1, 1), "{stats:?}");
    let jobs = fx.jobs_succeeded(1).await;
    fx.assert_delivered("once.txt", &data);
    let events = fx.sqs_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].job_ids, [jobs[0].id]);
    assert_eq!(fx.messages_left().await, 0);
    fx.finish(consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sns_wrapped_body_works() {
    let (url, _dir) = common::sqlite_url();
    let fx = Fixture::new(orbit_options(&url)).await;
    let data = bytes(4, 2000);
    fx.upload("in/sns/wrapped.txt", &data).await;
    let original = fx.receive_records().await;
    fx.delete(&original).await;
    let wrapped = json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
        "Subject": "Amazon S3 Notification",
        "Message": original.body().unwrap(),
        "Timestamp": "2026-01-01T00:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    });
    fx.send(&wrapped.to_string()).await;

    let consumer = fx.start().await;
    let stats = consumer
        .wait_for(WAIT, |s| s.ingested >= 1 && s.deleted >= 1)
        .await
        .unwrap();
    assert_eq!(stats.dead, 0, "{stats:?}");
    fx.jobs_succeeded(1).await;
    fx.assert_delivered("sns/wrapped.txt", &data);
    let events = fx.sqs_events().await;
    assert_eq!(events[0].payload["payload"]["via"], "sns");
    fx.finish(consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_and_the_consumer_goes_on() {
    let (url, _dir) = common::sqlite_url();
    let fx = Fixture::new(orbit_options(&url)).await;
    let consumer = fx.start().await;
    let not_json = "this is { not json";
    let no_key = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": fx.bucket}, "object": {"size": 3}}}]})
    .to_string();
    fx.send(not_json).await;
    fx.send(&no_key).await;
    consumer
        .wait_for(WAIT, |s| s.dead >= 2 && s.deleted >= 2)
        .await
        .unwrap();
    let data = bytes(5, 4096);
    fx.upload("in/after the poison.bin", &data).await;
    let stats = consumer
        .wait_for(WAIT, |s| s.ingested >= 1 && s.deleted >= 3)
        .await
        .unwrap();
    assert_eq!(stats.dead, 2, "{stats:?}");
    assert!(stats_settled(&stats), "{stats:?}");
    fx.jobs_succeeded(1).await;
    fx.assert_delivered("after the poison.bin", &data);

    let events = fx.sqs_events().await;
    let dead: Vec<_> = events
        .iter()
        .filter(|e| e.state == EventState::Dead)
        .collect();
    assert_eq!(dead.len(), 2, "{events:?}");
    for (event, body, why) in [
        (dead[0], not_json, "not JSON"),
        (dead[1], no_key.as_str(), "no s3.object.key"),
    ] {
        assert_eq!(event.payload["body"], body, "{event:?}");
        let reason = event.error.as_deref().unwrap();
        assert!(reason.contains(why), "{reason}");
        assert!(event.job_ids.is_empty());
    }
    consumer
        .wait_for(WAIT, |s| s.deleted >= 3 + s.test_events)
        .await
        .unwrap();
    assert_eq!(fx.messages_left().await, 0);
    fx.finish(consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_keys_decode() {
    let (url, _dir) = common::sqlite_url();
    let fx = Fixture::new(orbit_options(&url)).await;
    let consumer = fx.start().await;
    let paths = [
        "with space/a  b.txt",
        "plus+sign=eq&amp.txt",
        "ünïcødé 文件/ß.txt",
        "deep/er/est/x.txt",
        "odd #%25?!'()~,;@$.txt",
        "percent%2Fslash.txt",
    ];
    let mut expected = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let data = bytes(10 + i as u32, 100 + i);
        fx.upload(&format!("in/{path}"), &data).await;
        expected.push((path, data));
    }
    consumer
        .wait_for(WAIT, |s| s.ingested >= paths.len() as u64)
        .await
        .unwrap();
    fx.jobs_succeeded(paths.len()).await;
    for (path, data) in &expected {
        fx.assert_delivered(path, data);
    }
    let mut keys: Vec<String> = fx
        .sqs_events()
        .await
        .iter()
        .map(|e| e.payload["file"]["path"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    let mut want: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    want.sort();
    assert_eq!(keys, want);
    fx.finish(consumer).await;
}

/// Opens a second connection to the test's SQLite store.
async fn sqlite_side_door(url: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_store_leaves_messages_for_the_queues_redrive_policy() {
    let (url, _dir) = common::sqlite_url();
    let options = orbit_options(&url);
    let mut fx = Fixture::new(options.clone()).await;
    // The queue itself is made by the fixture; add a DLQ and a redrive policy to it.
    let dlq = fx.create_queue(&unique("fo-sqs-dlq"), &[]).await;
    let dlq_arn = queue_arn(&fx.sqs, &dlq).await;
    fx.sqs
        .set_queue_attributes()
        .queue_url(&fx.source.queue_url)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}).to_string(),
        )
        .send()
        .await
        .unwrap();
    fx.source.visibility_timeout_seconds = 1;
    let consumer = fx.start().await;
    consumer
        .wait_for(WAIT, |s| s.test_events >= 1)
        .await
        .unwrap();

    // The store "goes down": its events table disappears.
    let mut door = sqlite_side_door(&url).await;
    sqlx::query("ALTER TABLE events RENAME TO events_away")
        .execute(&mut door)
        .await
        .unwrap();
    fx.upload("in/doomed.txt", b"doomed").await;
    let stats = consumer.wait_for(WAIT, |s| s.failed >= 2).await.unwrap();
    assert_eq!((stats.ingested, stats.dead), (0, 0), "{stats:?}");
    // After maxReceiveCount deliveries the queue moves it to its DLQ, body intact.
    let deadline = Instant::now() + WAIT;
    let moved = loop {
        if let Some(message) = fx.receive(&dlq).await.into_iter().next() {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "nothing in the DLQ: {:?}",
            consumer.stats()
        );
    };
    assert!(moved.body().unwrap().contains("doomed.txt"), "{moved:?}");

    // The store comes back: the next upload goes through.
    sqlx::query("ALTER TABLE events_away RENAME TO events")
        .execute(&mut door)
        .await
        .unwrap();
    fx.upload("in/recovered.txt", b"recovered").await;
    consumer
        .wait_for(WAIT, |s| s.ingested >= 1 && s.deleted >= 2)
        .await
        .unwrap();
    fx.jobs_succeeded(1).await;
    fx.assert_delivered("recovered.txt", b"recovered");
    assert!(!fx.dst.join("doomed.txt").exists());
    fx.finish(consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_is_extended_while_an_ingest_is_slow() {
    let (url, _dir) = common::sqlite_url();
    let mut fx = Fixture::new(orbit_options(&url)).await;
    fx.source.visibility_timeout_seconds = 2;
    let consumer = fx.start().await;
    consumer
        .wait_for(WAIT, |s| s.test_events >= 1)
        .await
        .unwrap();

    // Another writer holds the store for twice the visibility timeout (under the store's
    // busy timeout), so the ingest of the next message waits that long.
    let mut door = sqlite_side_door(&url).await;
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut door)
        .await
        .unwrap();
    fx.upload("in/slow.txt", b"slow").await;
    consumer.wait_for(WAIT, |s| s.received >= 2).await.unwrap();
    // Meanwhile nobody else can receive it: its visibility keeps being extended.
    let held_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < held_until {
        let received = fx.receive(&fx.source.queue_url).await;
        assert!(
            received.is_empty(),
            "redelivered while being ingested: {received:?}"
        );
    }
    sqlx::query("ROLLBACK").execute(&mut door).await.unwrap();
    let stats = consumer
        .wait_for(WAIT, |s| s.ingested >= 1 && s.deleted >= 2)
        .await
        .unwrap();
    assert_eq!(stats.received, 2, "{stats:?}");
    fx.jobs_succeeded(1).await;
    fx.assert_delivered("slow.txt", b"slow");
    fx.finish(consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_are_refused_at_start() {
    init_tracing();
    let (url, _dir) = common::sqlite_url();
    let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
    orbit
        .put_endpoint(&endpoint(Kind::Local, "dst"), 1)
        .await
        .unwrap();
    let moto = env("MOTO_ENDPOINT");
    let mut source = SqsSource::new(
        format!(
            "{moto}/{}/{}",
            env("MOTO_ACCOUNT_ID"),
            unique("fo-no-such-queue")
        ),
        env("MOTO_REGION"),
        "dst",
    );
    source.endpoint_url = Some(moto);
    source.credentials = AwsCredentials::new(
        env("MOTO_ACCESS_KEY_ID"),
        file_orbit::Secret::new("canary-Secret-8d1f"),
    );
    let refused = |err: file_orbit::Error| format!("{err} {err:?}");

    let err = orbit.start_sqs_source(source.clone()).await.err().unwrap();
    assert_eq!(err.kind, file_orbit::ErrorKind::InvalidInput, "{err}");
    assert!(err.message.contains("not an S3 endpoint"), "{err}");

    let s3 = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: "s3in".into(),
        config: EndpointConfig::S3(moto_s3("fo-sqs-unused", "in")),
    };
    orbit.put_endpoint(&s3, 1).await.unwrap();
    source.endpoint = "s3in".into();
    let err = orbit.start_sqs_source(source.clone()).await.err().unwrap();
    assert_eq!(err.kind, file_orbit::ErrorKind::NotFound, "{err}");
    assert!(!refused(err).contains("canary-Secret"));

    source.endpoint = "missing".into();
    let err = orbit.start_sqs_source(source.clone()).await.err().unwrap();
    assert_eq!(err.kind, file_orbit::ErrorKind::NotFound, "{err}");

    source.wait_time_seconds = 25;
    let err = orbit.start_sqs_source(source).await.err().unwrap();
    assert_eq!(err.field.as_deref(), Some("wait_time_seconds"), "{err}");
}
