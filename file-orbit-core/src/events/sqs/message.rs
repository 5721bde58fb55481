//! Parsing SQS message bodies (S3 notifications, direct or wrapped by SNS) into events;
//! pure functions, no I/O (the consumer does the receiving, ingesting and deleting).

use super::SOURCE;
use crate::engine::FileEvent;
use crate::events::IncomingEvent;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

/// What one message body says, parsed by `parse_s3_message`.
#[derive(Debug, Clone, Default)]
pub struct ParsedMessage {
    /// The body was S3's `s3:TestEvent`: nothing to do.
    pub test_event: bool,
    /// One event per usable record (with a file for the ones templates may match).
    pub events: Vec<IncomingEvent>,
    /// Why each unusable record could not be used (`record N: ...`).
    pub bad_records: Vec<String>,
}

/// Parses an SQS message body holding an S3 notification (directly from S3 or wrapped by
/// SNS) into events about files on the S3 endpoint named `endpoint`, whose bucket and key
/// prefix are `bucket` and `prefix`. `Err` is the reason the whole body is unusable.
pub fn parse_s3_message(
    body: &str,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) -> std::result::Result<ParsedMessage, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    let (value, via_sns) = match value.get("Type").and_then(Value::as_str) {
        Some("Notification") => {
            let inner = value.get("Message").and_then(Value::as_str).ok_or(
                "an SNS notification without a Message string (is raw delivery expected?)",
            )?;
            let inner: Value = serde_json::from_str(inner)
                .map_err(|err| format!("the SNS Message is not JSON: {err}"))?;
            (inner, true)
        }
        Some(other) => {
            return Err(format!(
                "an SNS message of type {other:?}, not a Notification"
            ));
        }
        None => (value, false),
    };
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(ParsedMessage {
            test_event: true,
            ..Default::default()
        });
    }
    let records = match value.get("Records") {
        Some(Value::Array(records)) => records,
        Some(_) => return Err("Records is not a list".into()),
        None => {
            return Err(
                "not an S3 event notification (no Records, and not an s3:TestEvent)".into(),
            );
        }
    };
    if records.is_empty() {
        return Err("Records is an empty list".into());
    }
    let prefix = prefix.trim_matches('/');
    let mut parsed = ParsedMessage::default();
    for (index, record) in records.iter().enumerate() {
        match parse_record(record, endpoint, bucket, prefix) {
            Ok(mut event) => {
                if via_sns {
                    event.payload["via"] = json!("sns");
                }
                parsed.events.push(event);
            }
            Err(why) => parsed.bad_records.push(format!("record {index}: {why}")),
        }
    }
    Ok(parsed)
}

fn parse_record(
    record: &Value,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) -> std::result::Result<IncomingEvent, String> {
    if !record.is_object() {
        return Err("not a JSON object".into());
    }
    let text = |pointer: &str| record.pointer(pointer).and_then(Value::as_str);
    if let Some(source) = text("/eventSource") {
        if source != "aws:s3" {
            return Err(format!("eventSource is {source:?}, not \"aws:s3\""));
        }
    }
    let event_name = text("/eventName").ok_or("no eventName")?;
    let record_bucket = text("/s3/bucket/name").ok_or("no s3.bucket.name")?;
    let raw_key = text("/s3/object/key").ok_or("no s3.object.key")?;
    let key = decode_key(raw_key)?;
    let size = match record.pointer("/s3/object/size") {
        None | Some(Value::Null) => None,
        Some(size) => Some(
            size.as_u64()
                .ok_or_else(|| format!("s3.object.size {size} is not a byte count"))?,
        ),
    };
    let non_empty = |pointer: &str| text(pointer).filter(|s| !s.is_empty());
    let sequencer = non_empty("/s3/object/sequencer");
    let etag = non_empty("/s3/object/eTag").map(|e| e.trim_matches('"'));
    let event_time_text = non_empty("/eventTime");
    let event_time = event_time_text.and_then(parse_event_time);
    let created = event_name.starts_with("ObjectCreated:");
    // Created: the object's version (sequencer, else eTag) alone, so the Put and
    // CompleteMultipartUpload events of one upload are one event. Others: by name too.
    let version = sequencer
        .or(etag)
        .or(if created { None } else { event_time_text })
        .ok_or("no s3.object.sequencer or s3.object.eTag to deduplicate by")?;
    let dedup_key = if created {
        format!("s3:{record_bucket}:{key}:{version}")
    } else {
        format!("s3:{record_bucket}:{key}:{event_name}:{version}")
    };

    let relative = if prefix.is_empty() {
        Some(key.as_str())
    } else {
        key.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
    };
    let ignored = if !created {
        Some(format!("{event_name} is not an ObjectCreated event"))
    } else if record_bucket != bucket {
        Some(format!(
            "bucket {record_bucket:?} is not endpoint {endpoint:?}'s bucket {bucket:?}"
        ))
    } else if relative.is_none() {
        Some(format!(
            "key {key:?} is outside endpoint {endpoint:?}'s prefix \"{prefix}/\""
        ))
    } else if relative.is_some_and(|r| r.is_empty() || r.ends_with('/')) {
        Some(format!("key {key:?} is a directory marker"))
    } else {
        None
    };
    let file = match (&ignored, relative) {
        (None, Some(path)) => Some(FileEvent {
            endpoint: endpoint.to_string(),
            path: path.to_string(),
            size,
            modified: event_time,
            ..FileEvent::default()
        }),
        _ => None,
    };
    let mut payload = json!({
        "event_name": event_name,
        "bucket": record_bucket,
        "key": key,
        "size": size,
        "etag": etag,
        "sequencer": sequencer,
        "event_time": event_time_text,
    });
    if let Some(why) = ignored {
        payload["ignored"] = json!(why);
    }
    Ok(IncomingEvent {
        source: SOURCE.into(),
        dedup_key: Some(dedup_key),
        file,
        template: None,
        payload,
    })
}

/// An S3 notification key: URL-encoded, with `+` for a space.
fn decode_key(raw: &str) -> std::result::Result<String, String> {
    let spaced = raw.replace('+', " ");
    let key = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| format!("s3.object.key {raw:?} does not decode to UTF-8"))?;
    if key.is_empty() {
        return Err("s3.object.key is empty".into());
    }
    Ok(key.into_owned())
}

/// `2024-01-02T03:04:05.678Z` (AWS) or without a zone (moto), taken as UTC.
fn parse_event_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, bucket: &str, key: &str) -> Value {
        json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-05-06T07:08:09.123Z", "eventName": name,
            "s3": {"bucket": {"name": bucket},
                "object": {"key": key, "size": 42, "eTag": "abc", "sequencer": "0055AED6DCD90281E5"}}})
    }

    fn body(records: Vec<Value>) -> String {
        json!({ "Records": records }).to_string()
    }

    fn parse(body: &str) -> ParsedMessage {
        parse_s3_message(body, "s3in", "bkt", "in/").unwrap()
    }

    #[test]
    fn a_put_becomes_a_file_event_relative_to_the_prefix() {
        let parsed = parse(&body(vec![record(
            "ObjectCreated:Put",
            "bkt",
            "in/a/b.csv",
        )]));
        assert!(!parsed.test_event && parsed.bad_records.is_empty());
        let [event] = &parsed.events[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(event.source, "sqs");
        assert_eq!(
            event.dedup_key.as_deref(),
            Some("s3:bkt:in/a/b.csv:0055AED6DCD90281E5")
        );
        let file = event.file.as_ref().unwrap();
        assert_eq!(
            (file.endpoint.as_str(), file.path.as_str()),
            ("s3in", "a/b.csv")
        );
        assert_eq!(file.size, Some(42));
        assert_eq!(
            file.modified.unwrap().to_rfc3339(),
            "2024-05-06T07:08:09.123+00:00"
        );
        assert!(event.payload.get("ignored").is_none());
    }

    #[test]
    fn moto_style_records_decode_keys_and_dedup_by_etag() {
        // moto: `/` encoded too, `+` for space, no sequencer, no time zone.
        let raw = r#"{"Records": [{"eventSource": "aws:s3", "eventTime": "2026-11-24T13:20:53.531846",
            "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "bkt"},
            "object": {"key": "in%2Fdir+a%2Fx%2By+%C3%BC%2Ffile+name.txt", "size": 5,
            "eTag": "5d41402abc4b2a76b9719d911017c592"}}}]}"#;
        let parsed = parse(raw);
        let file = parsed.events[0].file.as_ref().unwrap();
        assert_eq!(file.path, "dir a/x+y ü/file name.txt");
        assert_eq!(
            parsed.events[0].dedup_key.as_deref(),
            Some("s3:bkt:in/dir a/x+y ü/file name.txt:5d41402abc4b2a76b9719d911017c592")
        );
        assert!(file.modified.is_some());
    }

    #[test]
    fn multipart_put_and_complete_share_a_dedup_key() {
        let mut put = record("ObjectCreated:Put", "bkt", "in/big.bin");
        let mut complete = record("ObjectCreated:CompleteMultipartUpload", "bkt", "in/big.bin");
        for r in [&mut put, &mut complete] {
            r["s3"]["object"]
                .as_object_mut()
                .unwrap()
                .remove("sequencer");
        }
        let a = parse(&body(vec![put]));
        let b = parse(&body(vec![complete]));
        assert_eq!(a.events[0].dedup_key, b.events[0].dedup_key);
    }

    #[test]
    fn sns_wrapped_bodies_and_test_events() {
        let inner = body(vec![record("ObjectCreated:Copy", "bkt", "in/x.txt")]);
        let sns = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": inner, "Timestamp": "2024-05-06T07:08:09.123Z"})
        .to_string();
        let parsed = parse(&sns);
        assert_eq!(parsed.events[0].file.as_ref().unwrap().path, "x.txt");
        assert_eq!(parsed.events[0].payload["via"], "sns");

        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-06T07:08:09.123Z","Bucket":"bkt"}"#;
        assert!(parse(test).test_event);
        let wrapped = json!({"Type": "Notification", "Message": test}).to_string();
        assert!(parse(&wrapped).test_event);
    }

    #[test]
    fn other_records_are_kept_without_a_file() {
        let parsed = parse(&body(vec![
            record("ObjectRemoved:Delete", "bkt", "in/gone.txt"),
            record("ObjectCreated:Put", "other-bucket", "in/a.txt"),
            record("ObjectCreated:Put", "bkt", "elsewhere/a.txt"),
            record("ObjectCreated:Put", "bkt", "in/dir/"),
            record("ObjectCreated:Put", "bkt", "input.txt"),
        ]));
        assert!(parsed.bad_records.is_empty());
        let reasons: Vec<&str> = parsed
            .events
            .iter()
            .map(|e| {
                assert!(e.file.is_none(), "{e:?}");
                e.payload["ignored"].as_str().unwrap()
            })
            .collect();
        assert!(reasons[0].contains("not an ObjectCreated"), "{reasons:?}");
        assert!(reasons[1].contains("other-bucket"), "{reasons:?}");
        assert!(reasons[2].contains("outside"), "{reasons:?}");
        assert!(reasons[3].contains("directory marker"), "{reasons:?}");
        assert!(reasons[4].contains("outside"), "{reasons:?}");
        assert_eq!(
            parsed.events[0].dedup_key.as_deref(),
            Some("s3:bkt:in/gone.txt:ObjectRemoved:Delete:0055AED6DCD90281E5")
        );
    }

    #[test]
    fn without_a_prefix_the_key_is_the_path() {
        let parsed = parse_s3_message(
            &body(vec![record("ObjectCreated:Put", "bkt", "a/b.txt")]),
            "s3in",
            "bkt",
            "",
        )
        .unwrap();
        assert_eq!(parsed.events[0].file.as_ref().unwrap().path, "a/b.txt");
    }

    #[test]
    fn unusable_bodies_and_records_say_why() {
        for (body, why) in [
            ("not json", "not JSON"),
            ("{}", "no Records"),
            (r#"{"Records": {}}"#, "not a list"),
            (r#"{"Records": []}"#, "empty"),
            (
                r#"{"Type": "Notification", "Message": 5}"#,
                "Message string",
            ),
            (
                r#"{"Type": "Notification", "Message": "{oops"}"#,
                "SNS Message is not JSON",
            ),
            (
                r#"{"Type": "SubscriptionConfirmation"}"#,
                "SubscriptionConfirmation",
            ),
        ] {
            let err = parse_s3_message(body, "s3in", "bkt", "in").unwrap_err();
            assert!(err.contains(why), "{body}: {err}");
        }
        let mut no_key = record("ObjectCreated:Put", "bkt", "in/a");
        no_key["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("key");
        let mut no_version = record("ObjectCreated:Put", "bkt", "in/a");
        for field in ["sequencer", "eTag"] {
            no_version["s3"]["object"]
                .as_object_mut()
                .unwrap()
                .remove(field);
        }
        let mut bad_size = record("ObjectCreated:Put", "bkt", "in/a");
        bad_size["s3"]["object"]["size"] = json!("big");
        let mut sqs_event = record("ObjectCreated:Put", "bkt", "in/a");
        sqs_event["eventSource"] = json!("aws:sqs");
        let parsed = parse(&body(vec![
            record("ObjectCreated:Put", "bkt", "in/good.txt"),
            no_key,
            no_version,
            bad_size,
            sqs_event,
            json!("text"),
            record("ObjectCreated:Put", "bkt", "in%FF"),
        ]));
        assert_eq!(parsed.events.len(), 1);
        let expected = [
            "record 1: no s3.object.key",
            "record 2: no s3.object.sequencer",
            "record 3: s3.object.size",
            "record 4: eventSource",
            "record 5: not a JSON object",
            "record 6: s3.object.key",
        ];
        assert_eq!(parsed.bad_records.len(), expected.len(), "{parsed:?}");
        for (got, want) in parsed.bad_records.iter().zip(expected) {
            assert!(got.starts_with(want), "{got} vs {want}");
        }
    }
}
