//! Tests of the bodies each channel sends: their shapes, Slack's limits on a big digest,
//! the signature, and the mail's headers and text.

use super::*;
use crate::notify::message::MAX_DIGEST_ITEMS;
use crate::notify::{ErrorFacts, JobFacts, NotifyEvent, Side, SmtpTls};
use chrono::TimeZone;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 18, 0, 0).unwrap()
}

fn job_item(id: i64, event: NotifyEvent, path: &str) -> Item {
    Item {
        event,
        at: at(),
        audit_id: 100 + id,
        subject: format!("job/{id}"),
        job: Some(JobFacts {
            id,
            url: format!("http://127.0.0.1:8080/api/v1/jobs/{id}"),
            state: "dead".into(),
            template: Some("nightly".into()),
            source: Side {
                endpoint: "in".into(),
                path: path.into(),
            },
            destination: Side {
                endpoint: "out".into(),
                path: "/b/".into(),
            },
            attempt: 3,
            max_attempts: 3,
            chain: id,
        }),
        source: None,
        endpoint: None,
        worker: None,
        error: Some(ErrorFacts {
            kind: "Connection".into(),
            message: "refused <&> by peer".into(),
        }),
    }
}

fn one(item: Item) -> Message {
    Message {
        id: "m-7f3a".into(),
        notification: "ops".into(),
        event: item.event.as_str().into(),
        created_at: at(),
        count: 1,
        counts: BTreeMap::from([(item.event.as_str().to_string(), 1)]),
        items: vec![item],
        omitted: 0,
        test: false,
    }
}

/// A digest of `n` job failures: at most MAX_DIGEST_ITEMS listed, the rest omitted.
fn digest(n: usize, path: &str) -> Message {
    let items: Vec<Item> = (0..n.min(MAX_DIGEST_ITEMS))
        .map(|i| job_item(i as i64 + 1, NotifyEvent::JobDead, path))
        .collect();
    Message {
        id: "m-digest".into(),
        notification: "ops".into(),
        event: "digest".into(),
        created_at: at(),
        count: n as u64,
        counts: BTreeMap::from([("job_dead".to_string(), n as u64)]),
        omitted: (n - items.len()) as u64,
        items,
        test: false,
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn the_webhook_body_is_the_documented_schema() {
    let message = one(job_item(12, NotifyEvent::JobDead, "/a.txt"));
    let bytes = webhook_body(&message);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"schema":"file-orbit.notification/v1","id":"m-7f3a","#),
        "{text}"
    );
    let body = json(&bytes);
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut documented = [
        "schema",
        "id",
        "notification",
        "event",
        "created_at",
        "summary",
        "count",
        "counts",
        "items",
        "omitted",
        "test",
    ];
    documented.sort_unstable();
    assert_eq!(keys, documented);
    assert_eq!(body["schema"], "file-orbit.notification/v1");
    assert_eq!(body["id"], "m-7f3a");
    assert_eq!(body["event"], "job_dead");
    assert_eq!(body["created_at"], "2026-12-07T18:00:00Z");
    assert_eq!(
        body["summary"],
        "Job dead: job 12 in:/a.txt -> out:/b/ (Connection: refused <&> by peer)"
    );
    assert_eq!(body["counts"], json!({"job_dead": 1}));
    assert_eq!(body["items"], serde_json::to_value(&message.items).unwrap());
    assert_eq!(
        body["items"][0]["job"]["url"],
        "http://127.0.0.1:8080/api/v1/jobs/12"
    );
    assert_eq!(body["omitted"], 0);
    assert_eq!(body["test"], false);
}

#[test]
fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
    let key = Secret::new("0123456789abcdef-key");
    let header = signature_header(&key, 1_765_130_400, b"{\"a\":1}");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef-key").unwrap();
    mac.update(b"1765130400.{\"a\":1}");
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(header, format!("t=1765130400,v1={expected}"));
    assert_eq!(expected.len(), 64);
    assert!(
        expected
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    );
    assert_ne!(header, signature_header(&key, 1_765_130_400, b"{\"a\":2}"));
    assert_ne!(header, signature_header(&key, 1_765_130_401, b"{\"a\":1}"));
}

#[test]
fn a_slack_message_has_a_header_a_section_per_item_a_link_and_escapes_user_text() {
    let message = one(job_item(12, NotifyEvent::JobDead, "/a<b>&c.txt"));
    let body = json(&slack_body(&message));
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("Job dead: job 12")
    );
    let blocks = body["blocks"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["header", "section", "context"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "File Orbit: Job dead");
    let section = blocks[1]["text"]["text"].as_str().unwrap();
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert!(
        section.contains("<http://127.0.0.1:8080/api/v1/jobs/12|job 12>"),
        "{section}"
    );
    assert!(section.contains("in:/a&lt;b&gt;&amp;c.txt"), "{section}");
    assert!(
        section.contains("refused &lt;&amp;&gt; by peer"),
        "{section}"
    );
    let context = blocks[2]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.contains("m-7f3a") && context.contains("1 events: 1 job dead"),
        "{context}"
    );
}

#[test]
fn a_digest_of_60_stays_within_slacks_limits() {
    let long_path = format!("/{}", "dir&<x>/".repeat(500));
    let message = digest(60, &long_path);
    assert_eq!((message.items.len(), message.omitted), (50, 10));
    let body = json(&slack_body(&message));
    let blocks = body["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    let sections: Vec<&str> = blocks
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    // The summary, 20 items, and the rest counted.
    assert_eq!(sections.len(), 1 + SHOWN_ITEMS + 1);
    assert!(
        sections[0].starts_with("60 events since the rate limit"),
        "{}",
        sections[0]
    );
    assert_eq!(*sections.last().unwrap(), "…and 40 more");
    for text in &sections {
        assert!(
            text.chars().count() <= 3000,
            "{} chars",
            text.chars().count()
        );
        let tail = &text[text.rfind('&').unwrap_or(0)..];
        assert!(
            !tail.starts_with('&') || tail.contains(';'),
            "cut inside an entity: {tail}"
        );
    }
    assert!(body["text"].as_str().unwrap().chars().count() <= 3000);
    let header = blocks[0]["text"]["text"].as_str().unwrap();
    assert_eq!(header, "File Orbit: 60 events (ops)");
    let context = blocks.last().unwrap()["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(context.contains("60 events: 60 job dead"), "{context}");

    let mut named = digest(1, "/a");
    named.notification = "n".repeat(400);
    let body = json(&slack_body(&named));
    assert_eq!(
        body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        150
    );
}

#[test]
fn a_teams_message_is_an_adaptive_card_with_a_factset_per_item() {
    let message = one(job_item(12, NotifyEvent::JobDead, "/a.txt"));
    let body = json(&teams_body(&message));
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(attachment["contentUrl"].is_null());
    let card = &attachment["content"];
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(
        (card["type"].as_str(), card["version"].as_str()),
        (Some("AdaptiveCard"), Some("1.4"))
    );
    let blocks = card["body"].as_array().unwrap();
    assert_eq!(
        blocks[0],
        json!({"type": "TextBlock", "text": "File Orbit: Job dead", "wrap": true, "weight": "bolder", "size": "medium"})
    );
    assert_eq!(blocks[1]["type"], "TextBlock");
    assert_eq!(blocks[1]["wrap"], true);
    assert_eq!(blocks[2]["type"], "FactSet");
    let titles: Vec<&str> = blocks[2]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Event", "Job", "From", "To", "Error", "When"]);
    assert_eq!(
        blocks[2]["facts"][1]["value"],
        "12 (dead, attempt 3 of 3, template nightly)"
    );
    assert_eq!(blocks[2]["facts"][5]["value"], "2026-12-07 18:00:00 UTC");
    assert_eq!(blocks.len(), 3);
    assert_eq!(
        card["actions"],
        json!([{"type": "Action.OpenUrl", "title": "Open job 12", "url": "http://127.0.0.1:8080/api/v1/jobs/12"}])
    );

    let big = json(&teams_body(&digest(60, &"/p".repeat(1000))));
    let blocks = big["attachments"][0]["content"]["body"].as_array().unwrap();
    let sets = blocks.iter().filter(|b| b["type"] == "FactSet").count();
    assert!((1..=SHOWN_ITEMS).contains(&sets), "{sets}");
    assert_eq!(
        blocks.last().unwrap()["text"],
        format!("and {} more", 60 - sets)
    );
    assert!(
        big.to_string().len() < 28_000,
        "{} bytes",
        big.to_string().len()
    );

    let mut test = one(job_item(1, NotifyEvent::JobSucceeded, "/a"));
    test.items.clear();
    test.test = true;
    let card = json(&teams_body(&test));
    assert_eq!(card["attachments"][0]["content"]["actions"], json!([]));
}

fn channel() -> EmailChannel {
    EmailChannel {
        host: "127.0.0.1".into(),
        port: Some(2525),
        tls: SmtpTls::Starttls,
        username: None,
        password: None,
        from: "File Orbit <orbit@example.com>".into(),
        to: vec!["ops@example.com".into(), "oncall@example.com".into()],
        ca_file: None,
    }
}

#[test]
fn the_mail_has_a_stable_message_id_a_subject_and_every_item() {
    let mut message = digest(60, "/in/a.txt");
    message.items[1].error = Some(ErrorFacts {
        kind: "NotFound".into(),
        message: "no such file\nsecond line".into(),
    });
    let mail = email(&channel(), &message).unwrap();
    let raw = String::from_utf8(mail.formatted()).unwrap();
    assert!(raw.contains("Message-ID: <m-digest@file-orbit>"), "{raw}");
    assert!(
        raw.contains("From: \"File Orbit\" <orbit@example.com>"),
        "{raw}"
    );
    assert!(
        raw.contains("To: ops@example.com, oncall@example.com"),
        "{raw}"
    );
    assert!(
        raw.contains("Subject: [File Orbit] 60 events since the rate limit"),
        "{raw}"
    );
    assert!(
        raw.contains("Content-Type: text/plain; charset=utf-8"),
        "{raw}"
    );
    let text = email_text(&message);
    for id in 1..=50 {
        assert!(
            text.contains(&format!(
                "   Link:     http://127.0.0.1:8080/api/v1/jobs/{id}\n"
            )),
            "{id}"
        );
    }
    assert!(text.contains("   From:     in:/in/a.txt\n"), "{text}");
    assert!(
        text.contains("   Error:    NotFound: no such file second line\n"),
        "{text}"
    );
    assert!(text.contains("…and 10 more, not listed."), "{text}");
    assert!(
        text.ends_with(
            "File Orbit notification \"ops\": 60 events: 60 job dead\nMessage id: m-digest\n"
        ),
        "{text}"
    );

    // The same message makes the same Message-ID (a retry is a repeat the receiver drops).
    let again = String::from_utf8(email(&channel(), &message).unwrap().formatted()).unwrap();
    assert!(again.contains("Message-ID: <m-digest@file-orbit>"));

    let mut long = one(job_item(1, NotifyEvent::JobDead, &"/x".repeat(300)));
    long.id = "id with <spaces>".into();
    let mail = email(&channel(), &long).unwrap();
    assert_eq!(
        mail.headers().get_raw("Message-ID"),
        Some("<idwithspaces@file-orbit>")
    );
    let subject = mail.headers().get_raw("Subject").unwrap();
    assert_eq!(subject.chars().count(), 200, "{subject}");
    assert!(subject.starts_with("[File Orbit] Job dead: job 1 in:/x/x") && subject.ends_with('…'));
}

#[test]
fn a_bad_sender_is_refused_naming_the_field() {
    let mut bad = channel();
    bad.to[1] = "not an address".into();
    let err = email(&bad, &digest(1, "/a")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("to[1]"));
}
