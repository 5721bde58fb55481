//! Bandwidth limits over the API and in the configuration: an endpoint's `bandwidth` is
//! written with PUT, listed with the rates in force and the next change, refused naming
//! the field when bad, declared in TOML (endpoints and the service-wide cap), and shown
//! per endpoint by `/metrics`.

mod common;

use common::server::{TestServer, endpoint_body};
use common::{Kind, endpoint, until};
use file_orbit::server::ServerConfig;
use file_orbit::worker::WorkerConfig;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_written_listed_refused_and_measured_over_http() {
    let mut setup = TestServer::setup(1);
    setup.options.bandwidth.service = Some("64M:32M".parse().unwrap());
    let mut ts = setup.start().await;
    let (api, keys) = (&ts.api, &ts.keys);
    let dst = endpoint(Kind::Local, "dst");

    let mut body = endpoint_body(&dst, None);
    body["bandwidth"] = json!("2M:1M");
    let reply = api.put("/api/v1/endpoints/dst", &keys.admin, body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let shown = reply.json();
    assert_eq!(shown["bandwidth"], "2M:1M");
    assert_eq!(
        shown["bandwidth_now"],
        json!({"upload": 2 << 20, "download": 1 << 20})
    );
    assert!(shown["bandwidth_next"].is_null());

    let mut body = endpoint_body(&dst, None);
    body["bandwidth"] = json!("Mon-08:00,512k Sat-00:00,off");
    api.put("/api/v1/endpoints/dst", &keys.admin, body).await;
    let one = api.get("/api/v1/endpoints/dst", &keys.viewer).await.json();
    assert!(one["bandwidth_next"]["at"].is_string(), "{one}");
    assert_ne!(
        one["bandwidth_next"]["rates"], one["bandwidth_now"],
        "{one}"
    );

    for bad in [
        json!("fast"),
        json!(5),
        json!("08:00,1M 25:00,off"),
        json!("1B"),
    ] {
        let mut body = endpoint_body(&dst, None);
        body["bandwidth"] = bad.clone();
        let reply = api.put("/api/v1/endpoints/dst", &keys.admin, body).await;
        assert_eq!(
            reply.error(400)["field"],
            "bandwidth",
            "{bad}: {}",
            reply.body
        );
    }

    let mut body = endpoint_body(&dst, None);
    body["bandwidth"] = json!("3M");
    api.put("/api/v1/endpoints/dst", &keys.admin, body).await;
    let metric = |endpoint: &str, direction: &str, value: u64| {
        format!(
            "file_orbit_endpoint_bandwidth_limit_bytes_per_second{{endpoint=\"{endpoint}\",direction=\"{direction}\"}} {value}"
        )
    };
    until(
        "the limits in /metrics",
        Duration::from_secs(10),
        async || {
            let text = api.get("/metrics", &keys.viewer).await.body;
            [
                metric("dst", "upload", 3 << 20),
                metric("dst", "download", 3 << 20),
                metric("", "upload", 64 << 20),
                metric("", "download", 32 << 20),
            ]
            .iter()
            .all(|line| text.contains(line))
            .then_some(())
        },
    )
    .await;
    assert!(ts.shutdown().await, "clean shutdown");
}

#[test]
fn the_configuration_declares_limits_and_refuses_bad_ones_naming_them() {
    let text = "bandwidth = \"08:00,10M 18:00,off\"\n\
                [[endpoints]]\nname = \"out\"\ntype = \"local\"\nroot = \"/srv/out\"\n\
                bandwidth = \"2M:off\"\n";
    let config = ServerConfig::from_toml(text).unwrap();
    assert_eq!(
        config.bandwidth.as_ref().map(|b| b.as_str()),
        Some("08:00,10M 18:00,off")
    );
    let declared = &config.endpoints[0].endpoint;
    assert_eq!(declared.bandwidth.as_ref().unwrap().as_str(), "2M:off");

    let err = ServerConfig::from_toml("bandwidth = \"lots\"\n").unwrap_err();
    assert!(err.to_string().contains("bandwidth"), "{err}");
    let err = ServerConfig::from_toml(&text.replace("2M:off", "2Q")).unwrap_err();
    assert!(err.to_string().contains("bandwidth"), "{err}");

    let worker = WorkerConfig::from_toml(
        "store_url = \"sqlite://x.db\"\nbandwidth = \"Sat-00:00,off Mon-00:00,5M\"\n",
    )
    .unwrap();
    let options = worker.orbit_options();
    assert_eq!(
        options.bandwidth.service.as_ref().map(|b| b.as_str()),
        Some("Sat-00:00,off Mon-00:00,5M")
    );
    let err = WorkerConfig::from_toml("store_url = \"sqlite://x.db\"\nbandwidth = \"9:00,1M\"\n")
        .unwrap_err();
    assert!(err.to_string().contains("bandwidth"), "{err}");
}
