//! HttpSource against real servers on loopback, made to misbehave on purpose.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_source::{Auth, HttpSettings, HttpSource};
use registry_core::{Digest, Source, SourceError, parse_bundle};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SCRIPT: &str = "(function (input) { return input; })";

/// A bundle document for task `name`, and its digest.
fn bundle(name: &str) -> (serde_json::Value, String) {
    let files = BTreeMap::from([
        (
            "metadata.json".to_owned(),
            format!(r#"{{"description":"d","label":"l","name":"{name}","version":"1.0.0"}}"#),
        ),
        ("main.js".to_owned(), SCRIPT.to_owned()),
    ]);
    let digest = Digest::of_files(files.iter().map(|(p, c)| (p.as_str(), c.as_bytes()))).to_string();
    (
        json!({ "name": name, "version": "1.0.0", "digest": digest, "files": files }),
        digest,
    )
}

fn item(name: &str, href: &str) -> serde_json::Value {
    json!({ "name": name, "version": "1.0.0", "digest": bundle(name).1, "available": true, "href": href })
}

async fn start(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn settings(url: String) -> HttpSettings {
    let mut settings = HttpSettings::new(url);
    settings.backoff_ms = 10;
    settings.timeout_ms = 2_000;
    settings
}

fn http(settings: HttpSettings) -> HttpSource {
    HttpSource::new("remote", settings).unwrap()
}

fn unavailable_reason(result: Result<registry_core::Scan, SourceError>) -> String {
    match result {
        Err(SourceError::Unavailable { reason, .. }) => reason,
        other => panic!("expected a failed scan, got {other:?}"),
    }
}

#[derive(Default)]
struct Hits {
    index: AtomicUsize,
    not_modified: AtomicUsize,
}

#[tokio::test]
async fn follows_pages_by_body_and_link_header_and_checks_every_bundle() {
    let app = Router::new()
        .route(
            "/reg/index.json",
            get(|| async {
                axum::Json(json!({ "items": [item("alpha", "bundles/alpha.json")], "next": "page-2.json" }))
            }),
        )
        .route(
            "/reg/page-2.json",
            get(|| async {
                let link = [(header::LINK, "</reg/page-3.json>; rel=\"next\"")];
                (
                    link,
                    axum::Json(json!({ "items": [item("beta", "/reg/bundles/beta.json")] })),
                )
            }),
        )
        .route(
            "/reg/page-3.json",
            get(|| async { axum::Json(json!({ "items": [item("gamma", "bundles/gamma.json")] })) }),
        )
        .route(
            "/reg/bundles/{file}",
            get(|axum::extract::Path(file): axum::extract::Path<String>| async move {
                axum::Json(bundle(file.trim_end_matches(".json")).0)
            }),
        );
    let base = start(app).await;
    let source = http(settings(format!("{base}/reg/index.json")));
    let scan = source.scan().await.unwrap();
    let locators: Vec<&str> = scan.entries.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(locators, ["alpha@1.0.0", "beta@1.0.0", "gamma@1.0.0"]);
    for entry in &scan.entries {
        let parsed = parse_bundle(&source.load(entry).await.unwrap()).unwrap();
        assert_eq!(
            parsed.task.digest.to_string(),
            entry.fingerprint,
            "the digest survives the trip"
        );
    }
}

#[tokio::test]
async fn an_unchanged_registry_costs_one_304_per_poll() {
    let hits = Arc::new(Hits::default());
    let app = Router::new()
        .route(
            "/v1/tasks",
            get(|State(hits): State<Arc<Hits>>, headers: HeaderMap| async move {
                hits.index.fetch_add(1, Ordering::SeqCst);
                if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v == "\"v1\"") {
                    hits.not_modified.fetch_add(1, Ordering::SeqCst);
                    return StatusCode::NOT_MODIFIED.into_response();
                }
                (
                    [(header::ETAG, "\"v1\"")],
                    axum::Json(json!({ "items": [item("alpha", "/b/alpha")] })),
                )
                    .into_response()
            }),
        )
        .with_state(hits.clone());
    let source = http(settings(format!("{}/v1/tasks", start(app).await)));
    let first = source.scan().await.unwrap();
    let second = source.scan().await.unwrap();
    assert_eq!(first.entries, second.entries, "the kept listing is the answer to a 304");
    assert_eq!(
        (
            hits.index.load(Ordering::SeqCst),
            hits.not_modified.load(Ordering::SeqCst)
        ),
        (2, 1)
    );
}

/// An index route that fails `failures` times with `status` (and `headers`), then answers.
fn flaky(status: StatusCode, failures: usize, retry_after: Option<&'static str>) -> (Router, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/v1/tasks",
            get(move |State(count): State<Arc<AtomicUsize>>| async move {
                if count.fetch_add(1, Ordering::SeqCst) < failures {
                    let mut response = (status, "no").into_response();
                    if let Some(after) = retry_after {
                        response
                            .headers_mut()
                            .insert(header::RETRY_AFTER, after.parse().unwrap());
                    }
                    return response;
                }
                axum::Json(json!({ "items": [] })).into_response()
            }),
        )
        .with_state(count.clone());
    (app, count)
}

#[tokio::test]
async fn server_errors_and_429_are_retried() {
    let (app, count) = flaky(StatusCode::INTERNAL_SERVER_ERROR, 2, None);
    let source = http(settings(format!("{}/v1/tasks", start(app).await)));
    assert!(source.scan().await.unwrap().complete);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let (app, count) = flaky(StatusCode::TOO_MANY_REQUESTS, 1, Some("0"));
    let source = http(settings(format!("{}/v1/tasks", start(app).await)));
    assert!(source.scan().await.is_ok());
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unauthorized_is_a_clear_error_and_not_retried() {
    let (app, count) = flaky(StatusCode::UNAUTHORIZED, usize::MAX, None);
    let source = http(settings(format!("{}/v1/tasks", start(app).await)));
    let reason = unavailable_reason(source.scan().await);
    assert!(reason.contains("401") && reason.contains("auth"), "{reason}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_configured_bearer_token_is_sent() {
    let app = Router::new().route(
        "/v1/tasks",
        get(|headers: HeaderMap| async move {
            if headers.get(header::AUTHORIZATION).is_some_and(|v| v == "Bearer s3cret") {
                axum::Json(json!({ "items": [] })).into_response()
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }),
    );
    let mut settings = settings(format!("{}/v1/tasks", start(app).await));
    settings.auth = Some(Auth::Bearer { token: "s3cret".into() });
    assert!(http(settings).scan().await.is_ok());
}

#[tokio::test]
async fn a_truncated_body_is_retried_then_fails_the_scan() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let served = count.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            served.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\ncontent-type: application/json\r\n\r\n{\"items\": [",
                )
                .await;
            let _ = socket.shutdown().await;
        }
    });
    let mut settings = settings(format!("http://{address}/v1/tasks"));
    settings.retries = 2;
    let reason = unavailable_reason(http(settings).scan().await);
    assert!(reason.contains("broke off"), "{reason}");
    assert_eq!(count.load(Ordering::SeqCst), 3, "first try and two retries");
}

#[tokio::test]
async fn an_oversized_body_is_refused_without_retrying() {
    let (app, _) = flaky(StatusCode::OK, 0, None);
    let app = app.route("/big", get(|| async { "x".repeat(50_000) }));
    let mut settings = settings(format!("{}/big", start(app).await));
    settings.max_response_bytes = 10_000;
    let reason = unavailable_reason(http(settings).scan().await);
    assert!(reason.contains("10000-byte cap"), "{reason}");
}

#[tokio::test]
async fn a_stalled_response_times_out() {
    let app = Router::new().route(
        "/v1/tasks",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "too late"
        }),
    );
    let mut settings = settings(format!("{}/v1/tasks", start(app).await));
    settings.timeout_ms = 200;
    settings.retries = 1;
    let started = Instant::now();
    let reason = unavailable_reason(http(settings).scan().await);
    assert!(reason.contains("timed out"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(5), "gave up in time");
}

#[tokio::test]
async fn a_bundle_that_does_not_hash_to_its_digest_is_refused() {
    let app = Router::new()
        .route(
            "/v1/tasks",
            get(|| async { axum::Json(json!({ "items": [item("alpha", "/b")] })) }),
        )
        .route(
            "/b",
            get(|| async {
                let (mut document, _) = bundle("alpha");
                document["files"]["main.js"] = json!("(function () { return 'tampered'; })");
                axum::Json(document)
            }),
        );
    let source = http(settings(format!("{}/v1/tasks", start(app).await)));
    let scan = source.scan().await.unwrap();
    match source.load(&scan.entries[0]).await {
        Err(SourceError::File { reason, .. }) => assert!(reason.contains("hash to"), "{reason}"),
        other => panic!("expected a refused bundle, got {other:?}"),
    }
}

#[tokio::test]
async fn basic_auth_and_a_named_header_are_sent_as_configured() {
    let app = Router::new().route(
        "/v1/tasks",
        get(|headers: HeaderMap| async move {
            // "reader:pa55" in base64
            let basic = headers
                .get(header::AUTHORIZATION)
                .is_some_and(|v| v == "Basic cmVhZGVyOnBhNTU=");
            let key = headers.get("x-api-key").is_some_and(|v| v == "k3y");
            if basic || key {
                axum::Json(json!({ "items": [] })).into_response()
            } else {
                StatusCode::FORBIDDEN.into_response()
            }
        }),
    );
    let url = format!("{}/v1/tasks", start(app).await);
    let mut basic = settings(url.clone());
    basic.auth = Some(Auth::Basic {
        username: "reader".into(),
        password: "pa55".into(),
    });
    assert!(http(basic).scan().await.is_ok());
    let mut keyed = settings(url.clone());
    keyed.auth = Some(Auth::Header {
        name: "X-Api-Key".into(),
        value: "k3y".into(),
    });
    assert!(http(keyed).scan().await.is_ok());
    let reason = unavailable_reason(http(settings(url)).scan().await);
    assert!(reason.contains("403") && reason.contains("auth"), "{reason}");
}

async fn start_on(ip: &str, app: Router) -> String {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// Issue 10, item 1: the source stopped after a fixed number of pages and called the
/// listing complete, so tasks on later pages went missing with `status` ok. A listing not
/// read to its end (page cap, a loop, the deadline) now fails the scan.
#[tokio::test]
async fn a_listing_cut_short_by_the_page_cap_fails_the_scan() {
    // Page n links to page n+1, for ever.
    let app = Router::new().route(
        "/pages/{n}",
        get(|axum::extract::Path(n): axum::extract::Path<u64>| async move {
            axum::Json(json!({ "items": [item(&format!("t{n}"), "b.json")], "next": format!("{}", n + 1) }))
        }),
    );
    let mut capped = settings(format!("{}/pages/0", start(app).await));
    capped.max_pages = 5;
    let reason = unavailable_reason(http(capped).scan().await);
    assert!(reason.contains("more than 5 pages"), "{reason}");
}

#[tokio::test]
async fn a_listing_whose_next_link_loops_fails_the_scan() {
    let app = Router::new()
        .route(
            "/a.json",
            get(|| async { axum::Json(json!({ "items": [item("alpha", "alpha.json")], "next": "b.json" })) }),
        )
        .route(
            "/b.json",
            get(|| async { axum::Json(json!({ "items": [item("beta", "beta.json")], "next": "a.json" })) }),
        );
    let reason = unavailable_reason(http(settings(format!("{}/a.json", start(app).await))).scan().await);
    assert!(reason.contains("loops"), "{reason}");
}

/// A server that answers every page slowly (each under the per-request timeout) held a
/// scan for minutes; the whole listing now has a deadline.
#[tokio::test]
async fn a_listing_slower_than_the_scan_deadline_fails_the_scan() {
    let app = Router::new().route(
        "/pages/{n}",
        get(|axum::extract::Path(n): axum::extract::Path<u64>| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            axum::Json(json!({ "items": [item(&format!("t{n}"), "b.json")], "next": format!("{}", n + 1) }))
        }),
    );
    let mut slow = settings(format!("{}/pages/0", start(app).await));
    slow.scan_timeout_ms = 1_000;
    let started = Instant::now();
    let reason = unavailable_reason(http(slow).scan().await);
    assert!(reason.contains("not read to its end within 1s"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

/// Which server saw a request, and the `Authorization` it carried.
type Requests = Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// Issue 10, item 2: an index item whose `href` pointed at another origin received the
/// source's `Authorization` header. Credentials now go only to the configured origin.
#[tokio::test]
async fn credentials_go_only_to_the_origin_of_the_configured_url() {
    let seen: Requests = Arc::default();
    let recorder = |origin: &'static str, seen: Requests| {
        move |headers: HeaderMap| async move {
            let authorization = headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            seen.lock().unwrap().push((origin.to_owned(), authorization));
            axum::Json(bundle("elsewhere").0)
        }
    };
    // The bundle lives on another loopback address: another origin.
    let other = start_on(
        "127.0.0.2",
        Router::new().route("/elsewhere.json", get(recorder("other", seen.clone()))),
    )
    .await;
    let href = format!("{other}/elsewhere.json");
    let home_seen = seen.clone();
    let app = Router::new()
        .route(
            "/v1/tasks",
            get(move |headers: HeaderMap| {
                let (href, seen) = (href.clone(), home_seen.clone());
                async move {
                    let authorization = headers
                        .get(header::AUTHORIZATION)
                        .map(|v| v.to_str().unwrap().to_owned());
                    seen.lock().unwrap().push(("home".to_owned(), authorization));
                    axum::Json(json!({ "items": [item("elsewhere", &href), item("home", "home.json")] }))
                }
            }),
        )
        .route("/v1/home.json", get(recorder("home", seen.clone())));
    let home = start(app).await;
    for auth in [
        Auth::Bearer { token: "s3cret".into() },
        Auth::Basic {
            username: "reader".into(),
            password: "pa55".into(),
        },
        Auth::Header {
            name: "Authorization".into(),
            value: "Token s3cret".into(),
        },
    ] {
        seen.lock().unwrap().clear();
        let mut configured = settings(format!("{home}/v1/tasks"));
        configured.auth = Some(auth);
        let source = http(configured);
        let scan = source.scan().await.unwrap();
        for entry in &scan.entries {
            // The `home` bundle's digest is announced for "home" but the recorder serves
            // "elsewhere": only the request matters here.
            let _ = source.load(entry).await;
        }
        let seen = seen.lock().unwrap().clone();
        let to_other: Vec<&Option<String>> = seen.iter().filter(|(o, _)| o == "other").map(|(_, a)| a).collect();
        let to_home: Vec<&Option<String>> = seen.iter().filter(|(o, _)| o == "home").map(|(_, a)| a).collect();
        assert_eq!(to_other, [&None], "no credentials to another origin: {seen:?}");
        assert_eq!(to_home.len(), 2, "{seen:?}");
        assert!(
            to_home.iter().all(|a| a.is_some()),
            "credentials to the configured origin: {seen:?}"
        );
    }
}

/// Issue 10, item 5: a bundle whose files exceed the read limits is refused.
#[tokio::test]
async fn a_bundle_over_the_read_limits_is_refused() {
    let big = "x".repeat(5_000);
    let files = BTreeMap::from([
        (
            "metadata.json".to_owned(),
            r#"{"name":"big","version":"1.0.0"}"#.to_owned(),
        ),
        ("main.js".to_owned(), big),
    ]);
    let digest = Digest::of_files(files.iter().map(|(p, c)| (p.as_str(), c.as_bytes()))).to_string();
    let document = json!({ "name": "big", "version": "1.0.0", "digest": digest, "files": files });
    let index = json!({ "items": [{ "name": "big", "version": "1.0.0", "digest": digest, "href": "big.json" }] });
    let app = Router::new()
        .route("/r/index.json", get(move || async move { axum::Json(index) }))
        .route("/r/big.json", get(move || async move { axum::Json(document) }));
    let source = http(settings(format!("{}/r/index.json", start(app).await))).with_read_limits(registry_core::Limits {
        max_file_bytes: 1_000,
        ..registry_core::Limits::default()
    });
    let entry = source.scan().await.unwrap().entries.remove(0);
    match source.load(&entry).await {
        Err(SourceError::TooLarge { file, size, cap }) => {
            assert_eq!((file.as_str(), size, cap), ("main.js", 5_000, 1_000))
        }
        other => panic!("expected a refusal by size, got {other:?}"),
    }
}
