//! rclone's log lines reach the host's `tracing` subscriber (target `rclone`) instead of
//! stderr, with secrets redacted. Its own test binary: it installs a global subscriber.

use file_orbit::rclone::Rclone;
use serde_json::json;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(String, tracing::Level, String)>>>);

struct Message(String);
impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let meta = event.metadata();
        self.0
            .lock()
            .unwrap()
            .push((meta.target().to_string(), *meta.level(), message.0));
    }
}

#[test]
fn rclone_notices_arrive_as_tracing_events() {
    let captured = Captured::default();
    tracing_subscriber::registry().with(captured.clone()).init();
    let client = Rclone::global().unwrap();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), "a").unwrap();

    // A dry run makes rclone log a NOTICE for the file it skips.
    client
        .rpc(
            "operations/copyfile",
            &json!({
                "srcFs": src.path(), "srcRemote": "a.txt",
                "dstFs": dst.path(), "dstRemote": "a.txt",
                "_config": {"DryRun": true},
            }),
        )
        .unwrap();

    let events = captured.0.lock().unwrap().clone();
    let notice = events
        .iter()
        .find(|(target, _, text)| target == "rclone" && text.contains("dry-run"))
        .unwrap_or_else(|| panic!("no rclone dry-run notice among {events:?}"));
    assert_eq!(notice.1, tracing::Level::INFO);
    assert!(
        notice.2.starts_with("a.txt: "),
        "no date or level prefix: {notice:?}"
    );
    assert!(!dst.path().join("a.txt").exists());
}
