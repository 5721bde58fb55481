//! The console's jobs pages and new-transfer form over real HTTP (feature `server`): the
//! list's filters (state, endpoint, template, creation time) narrowing it as
//! `GET /api/v1/jobs` does, paging by `before_id`, a bad filter a 400 page naming it; a
//! job's page with its spec, attempts and errors (escaped), chain, log lines for
//! operators, and the actions only an operator sees; the form's controls; the store's
//! filters alike on SQLite and PostgreSQL.

mod common;

use common::api::wait_state;
use common::console::Console;
use common::server::{TestServer, event_from_a_template, file_request};
use common::{Kind, endpoint, local_root, orbit_options, postgres_url, sqlite_url};
use file_orbit::engine::{JobFilter, JobRequest, JobState, Orbit};
use serde_json::{Value, json};
use std::time::Duration;

/// The job ids a list page links to, in its order.
fn listed(html: &str) -> Vec<i64> {
    html.match_indices("<tr data-job-row=\"")
        .map(|(at, marker)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// The ids `GET /api/v1/jobs?<query>` answers, in its order.
async fn api_ids(ts: &TestServer, query: &str) -> Vec<i64> {
    let reply = ts
        .api
        .get(&format!("/api/v1/jobs?{query}"), &ts.keys.viewer)
        .await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_i64().unwrap())
        .collect()
}

/// A page's text with the entities templates write for `/`, quotes and `&` turned back
/// (`&lt;` and `&gt;` stay, so escaped markup still shows as escaped).
fn text(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A job request `source:path` -> `destination` made by `template`.
fn request(source: &str, destination: &str, template: Option<&str>) -> Value {
    let mut request = file_request(source, "a.txt", destination, 1);
    request["template"] = json!(template);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_the_list_as_the_api_does_and_pages_follow_before_id() {
    // No workers: every job stays queued.
    let mut ts = TestServer::start(0).await;
    ts.local_pair(2).await;
    let other = endpoint(Kind::Local, "other");
    ts.orbit.put_endpoint(&other, 2).await.unwrap();
    let first = ts.submit(request("src", "dst", Some("nightly"))).await;
    let first_at = ts.orbit.job(first).await.unwrap().created_at;
    // The clock moves past the first job before the others (bounded poll).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while chrono::Utc::now().timestamp_millis() <= first_at {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stands still"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let to_other = ts.submit(request("src", "other", None)).await;
    let from_other = ts.submit(request("other", "dst", Some("hourly"))).await;
    let cancelled = ts.submit(request("src", "dst", None)).await;
    ts.orbit.cancel(cancelled).await.unwrap();
    let all = vec![cancelled, from_other, to_other, first];

    let operator = Console::sign_in(ts.addr(), &ts.keys.operator).await;
    let viewer = Console::sign_in(ts.addr(), &ts.keys.viewer).await;
    let page = viewer.page("/ui/jobs").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(listed(&page.body), all);
    assert!(page.body.contains(&format!("href=\"/ui/jobs/{first}\"")));
    assert!(page.body.contains(&format!("data-job-state=\"{first}\"")));
    assert!(text(&page.body).contains("src:a.txt"), "{}", page.body);
    assert!(
        text(&page.body).contains("dst:out/{filename}"),
        "{}",
        page.body
    );

    // Each filter, on the page (as its GET form sends it, empty fields too) and the API.
    let until = rfc3339(first_at);
    let since = rfc3339(first_at + 1);
    for (query, want) in [
        ("state=cancelled", vec![cancelled]),
        ("state=queued", vec![from_other, to_other, first]),
        ("endpoint=other", vec![from_other, to_other]),
        (
            "endpoint=other&state=queued&template=hourly",
            vec![from_other],
        ),
        ("template=nightly", vec![first]),
        (&format!("until={until}") as &str, vec![first]),
        (
            &format!("since={since}"),
            vec![cancelled, from_other, to_other],
        ),
        ("endpoint=nowhere", vec![]),
    ] {
        assert_eq!(api_ids(&ts, query).await, want, "API {query}");
        let form = format!("/ui/jobs?state=&endpoint=&template=&since=&until=&limit=&{query}");
        let page = viewer.page(&form).await;
        assert_eq!(page.status, 200, "{query}: {}", page.body);
        assert_eq!(listed(&page.body), want, "page {query}");
    }
    // The form's datetime-local values (UTC, to the minute or second).
    let page = viewer.page("/ui/jobs?since=2000-01-01T00%3A00").await;
    assert_eq!(listed(&page.body), all);
    let page = viewer.page("/ui/jobs?until=2000-01-01T00%3A00%3A00").await;
    assert_eq!(listed(&page.body), Vec::<i64>::new());
    assert!(page.body.contains("No jobs match"), "{}", page.body);

    // Paging: two per page, "Older" leads on by before_id, keeping the filters.
    let page = viewer.page("/ui/jobs?limit=2").await;
    assert_eq!(listed(&page.body), all[..2]);
    let older = format!("href=\"/ui/jobs?limit=2&before_id={from_other}\" rel=\"next\"");
    assert!(text(&page.body).contains(&older), "{}", page.body);
    let page = viewer
        .page(&format!("/ui/jobs?limit=2&before_id={from_other}"))
        .await;
    assert_eq!(listed(&page.body), all[2..]);
    assert!(page.body.contains("Newest"), "{}", page.body);
    let page = viewer
        .page(&format!("/ui/jobs?limit=2&before_id={first}"))
        .await;
    assert_eq!(listed(&page.body), Vec::<i64>::new());
    assert!(!page.body.contains("rel=\"next\""), "{}", page.body);
    assert_eq!(
        api_ids(&ts, &format!("limit=2&before_id={from_other}")).await,
        all[2..]
    );

    // A bad filter: 400, the page names it, never a 500; the API says the same.
    for (query, field) in [
        ("state=bogus", "state"),
        ("before_id=0", "before_id"),
        ("limit=5000", "limit"),
        ("since=yesterday", "since"),
        (&format!("since={since}&until={until}") as &str, "until"),
    ] {
        let page = viewer.page(&format!("/ui/jobs?{query}")).await;
        assert_eq!(page.status, 400, "{query}: {}", page.body);
        assert!(
            page.body
                .contains(&format!("data-filter-error=\"{field}\"")),
            "{query}: {}",
            page.body
        );
        assert!(page.body.contains("Not a valid filter: "), "{}", page.body);
        assert!(page.body.contains(field), "{}", page.body);
        let reply = ts
            .api
            .get(&format!("/api/v1/jobs?{query}"), &ts.keys.viewer)
            .await;
        assert_eq!(reply.error(400)["field"], field, "{query}");
    }

    // A queued job: the operator may cancel it, the viewer sees no action.
    let page = operator.page(&format!("/ui/jobs/{first}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!("data-job-state=\"{first}\"")));
    assert!(
        text(&page.body).contains(&format!("data-api=\"POST /api/v1/jobs/{first}/cancel\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains(">Cancel</button>"));
    assert!(!page.body.contains(">Retry</button>"));
    assert!(
        page.body
            .contains(&format!("data-job-progress=\"{first}\""))
    );
    let page = viewer.page(&format!("/ui/jobs/{first}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for control in [
        ">Cancel</button>",
        ">Retry</button>",
        ">Replay event</button>",
        "data-api=",
    ] {
        assert!(!page.body.contains(control), "{control}: {}", page.body);
    }
    assert!(page.body.contains("Log lines are shown to operators."));
    // The cancelled one may be retried.
    let page = operator.page(&format!("/ui/jobs/{cancelled}")).await;
    assert!(page.body.contains(">Retry</button>"), "{}", page.body);
    assert!(!page.body.contains(">Cancel</button>"));

    // No such job: 404; not an id: 400.
    assert_eq!(viewer.page("/ui/jobs/999999").await.status, 404);
    assert_eq!(viewer.page("/ui/jobs/abc").await.status, 400);

    // The new-transfer form: operators only, with the stored endpoints.
    let page = operator.page("/ui/transfers/new").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for part in [
        "id=\"transfer-form\"",
        "data-api=\"POST /api/v1/jobs\"",
        "data-then=\"/ui/jobs/{id}\"",
        "name=\"spec.source\"",
        "name=\"spec.destination\"",
        "name=\"spec.conflict\"",
        "<option value=\"skip_existing\">",
        "<option value=\"other\">other (local)</option>",
        ">Browse</button>",
        "id=\"path-preview\"",
        ">Submit transfer</button>",
        "/ui/assets/transfer.js",
    ] {
        assert!(page.body.contains(part), "{part}: {}", page.body);
    }
    assert_eq!(viewer.page("/ui/transfers/new").await.status, 403);
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_page_shows_its_spec_attempts_escaped_errors_chain_log_and_event() {
    let mut ts = TestServer::setup(1).log_to_file().start().await;
    let (src, _) = ts.local_pair(2).await;
    std::fs::write(local_root(&src).join("a.txt"), "hello console").unwrap();
    let (api, keys) = (&ts.api, &ts.keys);

    // A dead job whose error names its (missing) source: a path with markup in it.
    let hostile = "<script>alert(1)</script>.txt";
    let dead = ts.submit(file_request("src", hostile, "dst", 1)).await;
    let job = wait_state(api, &keys.viewer, dead, "dead").await;
    let error = job["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains("<script>"),
        "the error names the path: {error}"
    );

    let operator = Console::sign_in(ts.addr(), &keys.operator).await;
    let viewer = Console::sign_in(ts.addr(), &keys.viewer).await;
    let page = operator.page(&format!("/ui/jobs/{dead}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;.txt";
    assert!(text(&page.body).contains(escaped), "{}", page.body);
    assert!(page.body.contains(">Retry</button>"), "{}", page.body);
    assert!(!page.body.contains(">Cancel</button>"));
    // The attempt, with its outcome and error; the last error.
    assert!(
        page.body
            .contains("<span class=\"badge state-failed\">failed</span>"),
        "{}",
        page.body
    );
    let shown = error.replace('<', "&lt;").replace('>', "&gt;");
    assert!(
        text(&page.body).contains(&format!("<td data-label=\"Error\">{shown}</td>")),
        "{shown}: {}",
        page.body
    );
    assert!(
        text(&page.body).contains(&format!("data-job-error=\"{dead}\">")),
        "{}",
        page.body
    );
    // The spec, every field as text.
    for part in [
        "Source</dt><dd class=\"mono\">src:&lt;script&gt;",
        "Destination</dt><dd class=\"mono\">dst:out/{filename}",
        "Mode</dt><dd>copy",
        "Scope</dt><dd>file",
        "Include</dt><dd class=\"mono\">—",
        "Minimum size</dt><dd>—",
        "On conflict</dt><dd>overwrite",
        "Verification</dt><dd>verified after the copy",
        "Parallelism</dt><dd>the backends' default",
    ] {
        assert!(text(&page.body).contains(part), "{part}: {}", page.body);
    }
    // The log lines of the job, for the operator only.
    assert!(page.body.contains("class=\"job-log\""), "{}", page.body);
    let page = viewer.page(&format!("/ui/jobs/{dead}")).await;
    assert!(!page.body.contains(">Retry</button>"), "{}", page.body);
    assert!(!page.body.contains("class=\"job-log\""));
    assert!(!page.body.contains("<script>alert"));

    // The dead list names it; the retry the page's button makes works for the operator.
    let list = viewer.page("/ui/jobs?state=dead").await;
    assert_eq!(listed(&list.body), vec![dead]);
    assert!(!list.body.contains("<script>alert"), "{}", list.body);
    let reply = operator
        .api("POST", &format!("/api/v1/jobs/{dead}/retry"), None, true)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_state(api, &keys.viewer, dead, "dead").await;
    let page = operator.page(&format!("/ui/jobs/{dead}")).await;
    // Both runs are listed.
    assert_eq!(
        page.body.matches("<td data-label=\"Worker\"").count(),
        2,
        "{}",
        page.body
    );

    // A chain: the first hop's page links the next one.
    let mut chained = file_request("src", "a.txt", "dst", 1);
    chained["next_hops"] = json!([file_request("dst", "out/a.txt", "dst", 1)["spec"]]);
    let head = ts.submit(chained).await;
    wait_state(api, &keys.viewer, head, "succeeded").await;
    let chain = ts.orbit.chain_of(head).await.unwrap();
    assert_eq!(chain.len(), 2);
    wait_state(api, &keys.viewer, chain[1].id, "succeeded").await;
    let page = viewer.page(&format!("/ui/jobs/{head}")).await;
    assert!(
        page.body
            .contains(&format!("href=\"/ui/jobs/{}\"", chain[1].id)),
        "{}",
        page.body
    );
    assert!(page.body.contains("Next hops"), "{}", page.body);
    let page = viewer.page(&format!("/ui/jobs/{}", chain[1].id)).await;
    assert!(
        page.body.contains(&format!("href=\"/ui/jobs/{head}\"")),
        "{}",
        page.body
    );

    // A job made by an event: the operator may replay the event.
    let event = event_from_a_template(&ts).await;
    let made = ts.orbit.event(event).await.unwrap().job_ids[0];
    let page = operator.page(&format!("/ui/jobs/{made}")).await;
    let replay = format!("data-api=\"POST /api/v1/events/{event}/replay\"");
    assert!(text(&page.body).contains(&replay), "{}", page.body);
    assert!(page.body.contains(">Replay event</button>"));
    let page = viewer.page(&format!("/ui/jobs/{made}")).await;
    assert!(!text(&page.body).contains(&replay));
    let page = operator.page(&format!("/ui/jobs/{head}")).await;
    assert!(!page.body.contains(">Replay event</button>"));
    assert!(ts.shutdown().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_filters_alike_on_sqlite_and_postgresql() {
    let (sqlite, _dir) = sqlite_url();
    for url in [sqlite, postgres_url().await] {
        let orbit = Orbit::open(orbit_options(&url)).await.unwrap();
        let submit = |source: &str, destination: &str, template: Option<&str>| {
            let request: JobRequest =
                serde_json::from_value(request(source, destination, template)).unwrap();
            let orbit = orbit.clone();
            async move { orbit.submit(&request).await.unwrap() }
        };
        let a = submit("src", "dst", Some("nightly")).await;
        let b = submit("other", "src", None).await;
        let c = submit("dst", "other", Some("nightly")).await;
        orbit.cancel(c).await.unwrap();
        let created = orbit.job(b).await.unwrap().created_at;
        let ids = |filter: JobFilter| {
            let orbit = orbit.clone();
            async move {
                let jobs = orbit.jobs(&filter).await.unwrap();
                jobs.iter().map(|job| job.id).collect::<Vec<_>>()
            }
        };
        let endpoint = |name: &str| Some(name.to_string());
        for (filter, want) in [
            (
                JobFilter {
                    endpoint: endpoint("src"),
                    ..JobFilter::default()
                },
                vec![b, a],
            ),
            (
                JobFilter {
                    endpoint: endpoint("other"),
                    ..JobFilter::default()
                },
                vec![c, b],
            ),
            (
                JobFilter {
                    template: endpoint("nightly"),
                    state: Some(JobState::Queued),
                    ..JobFilter::default()
                },
                vec![a],
            ),
            (
                JobFilter {
                    endpoint: endpoint("dst"),
                    template: endpoint("nightly"),
                    ..JobFilter::default()
                },
                vec![c, a],
            ),
            (
                JobFilter {
                    endpoint: endpoint("dst"),
                    before_id: Some(c),
                    ..JobFilter::default()
                },
                vec![a],
            ),
            (
                JobFilter {
                    since: Some(created),
                    until: Some(created),
                    ..JobFilter::default()
                },
                {
                    // Jobs made in the same millisecond as b count too.
                    let mut same = Vec::new();
                    for id in [c, b, a] {
                        if orbit.job(id).await.unwrap().created_at == created {
                            same.push(id);
                        }
                    }
                    same
                },
            ),
            (
                JobFilter {
                    since: Some(i64::MAX),
                    ..JobFilter::default()
                },
                vec![],
            ),
            (
                JobFilter {
                    until: Some(0),
                    ..JobFilter::default()
                },
                vec![],
            ),
        ] {
            assert_eq!(ids(filter.clone()).await, want, "{url}: {filter:?}");
        }
        orbit.close().await;
    }
}
