//! S3 notifications on the moto server: an SQS source's settings for moto (in Rust and as
//! server TOML, with moto's S3 endpoint), and a fresh queue that receives a bucket's
//! `ObjectCreated` notifications (with a fresh bucket, in one call).

use super::{ensure_bucket, env, moto_s3, unique};
use file_orbit::endpoint::AwsCredentials;
use file_orbit::endpoint::{Endpoint, EndpointConfig};
use file_orbit::events::sqs::SqsSource;
use file_orbit::events::sqs::aws_sdk_sqs::{self, types::QueueAttributeName};

/// An SQS source on moto about stored S3 endpoint `endpoint` (no queue yet: set
/// `queue_url`), with moto's credentials and 1 s long polls.
pub fn moto_sqs_source(endpoint: &str) -> SqsSource {
    let mut source = SqsSource::new("", env("MOTO_REGION"), endpoint);
    source.endpoint_url = Some(env("MOTO_ENDPOINT"));
    source.credentials = AwsCredentials::new(
        env("MOTO_ACCESS_KEY_ID"),
        file_orbit::Secret::new(env("MOTO_SECRET_ACCESS_KEY")),
    );
    source.wait_time_seconds = 1;
    source
}

/// A fresh moto bucket (`unique(prefix)`, created) as S3 endpoint `name` at its root, and
/// a fresh queue its `ObjectCreated` notifications go to: the endpoint, the bucket and the
/// queue's URL.
pub async fn notified_bucket(prefix: &str, name: &str) -> (Endpoint, String, String) {
    let bucket = unique(prefix);
    let s3 = Endpoint {
        placement: Default::default(),
        bandwidth: None,
        name: name.into(),
        config: EndpointConfig::S3(moto_s3(&bucket, "")),
    };
    ensure_bucket(&s3);
    let sqs = moto_sqs_source(name).client().await;
    let queue_url = notified_queue(&sqs, &bucket, &bucket, &[]).await;
    (s3, bucket, queue_url)
}

/// Creates queue `name` with `attributes`; returns its URL.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> String {
    let mut request = sqs.create_queue().queue_name(name);
    for (name, value) in attributes {
        request = request.attributes(name.clone(), value);
    }
    request
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string()
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// Creates queue `name` (with `attributes`) and sends `bucket`'s `s3:ObjectCreated:*`
/// notifications to it; returns the queue's URL.
pub async fn notified_queue(
    sqs: &aws_sdk_sqs::Client,
    bucket: &str,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> String {
    let url = create_queue(sqs, name, attributes).await;
    let arn = queue_arn(sqs, &url).await;
    // The notification configuration by a plain PUT: moto checks no signature.
    let xml = format!(
        "<NotificationConfiguration><QueueConfiguration><Id>fo</Id><Queue>{arn}</Queue>\
         <Event>s3:ObjectCreated:*</Event></QueueConfiguration></NotificationConfiguration>"
    );
    ureq::put(&format!("{}/{bucket}?notification", env("MOTO_ENDPOINT")))
        .header("Content-Type", "application/xml")
        .send(&xml)
        .unwrap();
    url
}

/// The server TOML `[[endpoints]]` of S3 endpoint `name` on moto's `bucket`, its secret
/// read from env `secret_env`.
pub fn moto_s3_endpoint_toml(
    name: &str,
    bucket: &str,
    secret_env: &str,
    max_concurrent: u32,
) -> String {
    format!(
        r#"
[[endpoints]]
name = "{name}"
type = "s3"
bucket = "{bucket}"
region = "{region}"
endpoint_url = "{moto}"
force_path_style = true
access_key_id = "{key_id}"
secret_access_key = {{ env = "{secret_env}" }}
max_concurrent = {max_concurrent}
"#,
        region = env("MOTO_REGION"),
        moto = env("MOTO_ENDPOINT"),
        key_id = env("MOTO_ACCESS_KEY_ID"),
    )
}

/// The server TOML `[[sources]]` of SQS source `name` on moto's queue `queue_url` about S3
/// endpoint `endpoint`, its secret read from env `secret_env`, with the spec's `extra`
/// fields (e.g. `wait_time_seconds = 1`).
pub fn moto_sqs_source_toml(
    name: &str,
    queue_url: &str,
    endpoint: &str,
    secret_env: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[[sources]]
name = "{name}"
kind = "sqs"
spec = {{ queue_url = "{queue_url}", region = "{region}", endpoint_url = "{moto}", endpoint = "{endpoint}", access_key_id = "{key_id}", secret_access_key = {{ env = "{secret_env}" }}, {extra} }}
"#,
        region = env("MOTO_REGION"),
        moto = env("MOTO_ENDPOINT"),
        key_id = env("MOTO_ACCESS_KEY_ID"),
    )
}
