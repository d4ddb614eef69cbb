//! `taskreg serve` and registries chaining over HTTP: real binaries, real sockets.

use std::fs;
use taskreg_tests::{Server, Taskreg, TestDatabase, write_named_task, write_tree, zip_folder};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

async fn text_of(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

fn list(taskreg: &Taskreg) -> Vec<(String, String, String)> {
    let list = taskreg.run(&["--json", "list"]).json();
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().into(),
                v["version"].as_str().unwrap().into(),
                v["digest"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_registry_syncs_from_the_first_and_keeps_everything_when_it_stops() {
    let work = tempfile::tempdir().unwrap();
    let a_dir = work.path().join("a");
    write_tree(&a_dir.join("tasks"), 30).unwrap();
    write_named_task(&a_dir.join("more/odd name"), "odd.name_v2", "3.0.0-beta.1", 99).unwrap();
    write_named_task(&work.path().join("packed"), "packed", "1.2.3", 77).unwrap();
    zip_folder(&work.path().join("packed"), "packed/", &a_dir.join("packed.zip"));
    let a = Taskreg::new(format!("sqlite://{}", work.path().join("a.db").display()), &a_dir);
    a.run(&["sync", "tasks", "more", "packed.zip"]).assert_code(0);
    let server = Server::start(&a, &[]);

    let b_dir = work.path().join("b");
    fs::create_dir(&b_dir).unwrap();
    fs::write(
        b_dir.join("taskreg.toml"),
        format!(
            "[[sources]]\nname = \"upstream\"\ntype = \"http\"\nurl = \"{}/v1/tasks\"\nbackoff_ms = 10\nretries = 1\n",
            server.base
        ),
    )
    .unwrap();
    let b = Taskreg::new(format!("sqlite://{}", work.path().join("b.db").display()), &b_dir);
    let b_run = tokio::task::spawn_blocking({
        let b = Taskreg::new(b.database_url.clone(), b.dir.clone());
        move || b.run(&["--json", "sync"])
    })
    .await
    .unwrap();
    b_run.assert_code(0);
    assert_eq!(b_run.json()["added"], 32);
    assert_eq!(list(&b), list(&a), "identical names, versions and digests");

    drop(server);
    let after = b.run(&["--json", "sync"]);
    after.assert_code(0);
    let report = after.json();
    assert_eq!(report["sources"][0]["status"], "failed");
    assert_eq!(report["missing"], 0);
    assert_eq!(list(&b).len(), 32, "B keeps everything while A is away");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_re_poll_of_a_served_registry_is_one_request_answered_304() {
    use registry_core::{Source, SourcePriority};
    use registry_host::sync::{SyncOptions, sync};
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 20).unwrap();
    let a = Taskreg::new(format!("sqlite://{}", work.path().join("a.db").display()), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&a, &[]);

    // B as a long-lived process would hold it: one source object across polls.
    let db = TestDatabase::sqlite();
    let mut store =
        registry_host::store::Store::open(&registry_host::store::DatabaseUrl::parse(&db.url, "".as_ref()).unwrap())
            .await
            .unwrap();
    let settings = http_source::HttpSettings::new(format!("{}/v1/tasks", server.base));
    let sources: Vec<Box<dyn Source>> = vec![Box::new(http_source::HttpSource::new("a", settings).unwrap())];
    let first = sync(&mut store, &sources, &SourcePriority, &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!((first.counts.added, first.loaded), (20, 20));
    let second = sync(&mut store, &sources, &SourcePriority, &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!((second.counts.unchanged, second.loaded, second.written), (20, 0, false));

    let metrics = text_of(&client(), &format!("{}/metrics", server.base)).await;
    let index_requests: Vec<&str> = metrics.lines().filter(|l| l.contains("route=\"/v1/tasks\"")).collect();
    assert_eq!(
        index_requests,
        [
            "taskreg_http_requests_total{route=\"/v1/tasks\",status=\"200\"} 1",
            "taskreg_http_requests_total{route=\"/v1/tasks\",status=\"304\"} 1",
        ],
        "{metrics}"
    );
}

/// Issue 13: the address `serve` printed failed with `404` on `/` (the source needed the
/// index's full URL), and a one-shot `taskreg sync` forgot the index's ETag when it ended.
/// Now the root's service document leads to the index, and the ETag (with the listing it
/// stands for) is kept in the catalogue: a second one-shot sync against the unchanged
/// server is one request, answered `304`.
#[tokio::test(flavor = "multi_thread")]
async fn one_shot_syncs_from_a_server_s_address_keep_its_etag_between_runs() {
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 20).unwrap();
    let a = Taskreg::new(format!("sqlite://{}", work.path().join("a.db").display()), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&a, &[]);
    let http = client();
    let root: serde_json::Value = http.get(&server.base).send().await.unwrap().json().await.unwrap();
    assert_eq!(root["index"], "/v1/tasks", "{root}");
    assert_eq!(root["events"], "/v1/events", "{root}");

    let b_dir = work.path().join("b");
    fs::create_dir_all(&b_dir).unwrap();
    fs::write(
        b_dir.join("taskreg.toml"),
        format!(
            "[[sources]]\nname = \"a\"\ntype = \"http\"\nurl = \"{}\"\n",
            server.base
        ),
    )
    .unwrap();
    let b = Taskreg::new(format!("sqlite://{}", b_dir.join("b.db").display()), &b_dir);
    let first = b.run(&["--json", "sync"]);
    first.assert_code(0);
    assert_eq!(first.json()["added"], 20, "{}", first.stdout);
    let requests = |metrics: &str, route: &str| -> Vec<String> {
        metrics
            .lines()
            .filter(|l| l.contains(&format!("route=\"{route}\"")))
            .map(str::to_owned)
            .collect()
    };
    let before = text_of(&http, &format!("{}/metrics", server.base)).await;
    // This test's own request, and the first sync's.
    assert_eq!(
        requests(&before, "/"),
        ["taskreg_http_requests_total{route=\"/\",status=\"200\"} 2"]
    );

    let second = b.run(&["--json", "sync"]);
    second.assert_code(0);
    assert_eq!(second.json()["unchanged"], 20, "{}", second.stdout);
    let after = text_of(&http, &format!("{}/metrics", server.base)).await;
    assert_eq!(
        requests(&after, "/"),
        requests(&before, "/"),
        "the address is not asked again"
    );
    assert_eq!(
        requests(&after, "/v1/tasks"),
        [
            "taskreg_http_requests_total{route=\"/v1/tasks\",status=\"200\"} 1",
            "taskreg_http_requests_total{route=\"/v1/tasks\",status=\"304\"} 1",
        ],
        "{after}"
    );
    let bundles: Vec<String> = after
        .lines()
        .filter(|l| l.contains("route=\"/v1/tasks/{name}/{version}\""))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        bundles,
        ["taskreg_http_requests_total{route=\"/v1/tasks/{name}/{version}\",status=\"200\"} 20"]
    );
}

/// Issue 13: `/healthz` says the process is up (it reads nothing); `/readyz` says whether
/// the catalogue answers and has every migration this server knows, for load balancers.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_catalogue_and_healthz_only_the_process() {
    let db = TestDatabase::postgres().await;
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 3).unwrap();
    let a = Taskreg::new(db.url.clone(), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&a, &[]);
    let http = client();
    let status = |path: &'static str| {
        let request = http.get(format!("{}{path}", server.base));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(status("/readyz").await, (200, "ready\n".to_owned()));
    assert_eq!(status("/healthz").await, (200, "ok\n".to_owned()));

    // The catalogue loses its newest migration (restored from an older backup, say).
    db.execute_postgres(
        "DELETE FROM __diesel_schema_migrations WHERE version = (SELECT max(version) FROM __diesel_schema_migrations)",
    )
    .await;
    let (code, text) = status("/readyz").await;
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("lacks 1 migration"), "{text}");
    assert_eq!(
        status("/healthz").await,
        (200, "ok\n".to_owned()),
        "the process is still up"
    );
}

/// Issue 13: every request queued on one catalogue connection behind a mutex. A fixed
/// load (400 requests, 16 at a time, bundles, lookups, histories and index pages) on a
/// pooled server over PostgreSQL: every request answered, each with the right document.
/// (Its speed is measured by `taskreg bench`, not asserted here.)
#[tokio::test(flavor = "multi_thread")]
async fn a_bounded_load_on_a_pooled_server_gets_every_request_answered() {
    use futures::StreamExt;
    let db = TestDatabase::postgres().await;
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 50).unwrap();
    let a = Taskreg::new(db.url.clone(), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    fs::write(work.path().join("taskreg.toml"), "[serve]\npool_size = 4\n").unwrap();
    let server = Server::start(&a, &[]);
    let http = client();
    let answers: Vec<(String, u16, serde_json::Value)> = futures::stream::iter(0..400usize)
        .map(|i| {
            let task = format!("task-{:05}", (i * 7) % 50);
            let path = match i % 10 {
                0 => "/v1/tasks?limit=20".to_owned(),
                1 => format!("/v1/tasks/{task}"),
                2 | 3 => format!("/v1/tasks/{task}?req=%5E1"),
                _ => format!("/v1/tasks/{task}/1.0.0"),
            };
            let request = http.get(format!("{}{path}", server.base));
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (path, status, response.json().await.unwrap_or_default())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(answers.len(), 400);
    for (path, status, body) in &answers {
        assert_eq!(*status, 200, "{path}: {body}");
        if path.ends_with("/1.0.0") || path.contains("req=") {
            assert_eq!(body["version"], "1.0.0", "{path}: {body}");
        } else if path.starts_with("/v1/tasks?") {
            assert_eq!(body["items"].as_array().map(Vec::len), Some(20), "{path}");
        } else {
            assert_eq!(body["versions"].as_array().map(Vec::len), Some(1), "{path}");
        }
    }
}

/// Issue 14: the index is read page by page with a keyset cursor (the last name and
/// version of the page before), straight from the database. Writes between two page
/// requests never make a version skipped or repeated: what was there stays listed once,
/// what is added after the cursor shows up, what is added before it waits for the next
/// listing.
#[tokio::test(flavor = "multi_thread")]
async fn index_pages_skip_and_repeat_nothing_while_the_catalogue_changes_between_them() {
    let work = tempfile::tempdir().unwrap();
    let tasks = work.path().join("tasks");
    let folders = write_tree(&tasks, 30).unwrap();
    let a = Taskreg::new(format!("sqlite://{}", work.path().join("a.db").display()), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&a, &[]);
    let http = client();
    let get = |path: String| {
        let request = http.get(format!("{}{path}", server.base));
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let first = get("/v1/tasks?limit=10".into()).await;
    let mut listed: Vec<(String, bool)> = Vec::new();
    let take = |page: &serde_json::Value, listed: &mut Vec<(String, bool)>| {
        for item in page["items"].as_array().unwrap() {
            listed.push((item["name"].as_str().unwrap().to_owned(), item["available"] == true));
        }
        page["next"].as_str().map(str::to_owned)
    };
    let mut next = take(&first, &mut listed);
    assert_eq!(listed.last().unwrap().0, "task-00009");

    // Between pages: one task added before the cursor, one after, one removed.
    write_named_task(&tasks.join("early"), "task-00005b", "1.0.0", 100).unwrap();
    write_named_task(&tasks.join("late"), "task-00025b", "1.0.0", 101).unwrap();
    fs::remove_dir_all(&folders[20]).unwrap();
    a.run(&["sync", "tasks"]).assert_code(0);
    while let Some(path) = next {
        let page = get(path).await;
        next = take(&page, &mut listed);
    }
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "nothing repeated: {names:?}");
    for i in 0..30 {
        let name = format!("task-{i:05}");
        assert_eq!(
            names.iter().filter(|n| **n == name).count(),
            1,
            "{name} once: {names:?}"
        );
    }
    assert!(names.contains(&"task-00025b"), "added after the cursor: listed");
    assert!(
        !names.contains(&"task-00005b"),
        "added before the cursor: in the next listing"
    );
    assert!(
        listed.contains(&("task-00020".to_owned(), false)),
        "removed: listed as unavailable"
    );
    let again = get("/v1/tasks?limit=100".into()).await;
    assert_eq!(again["items"].as_array().unwrap().len(), 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_speaks_the_protocol() {
    let work = tempfile::tempdir().unwrap();
    let folders = write_tree(&work.path().join("tasks"), 5).unwrap();
    let a = Taskreg::new(format!("sqlite://{}", work.path().join("a.db").display()), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    fs::remove_dir_all(&folders[4]).unwrap(); // task-00004 becomes unavailable
    a.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&a, &["--token", "t0ken"]);
    let http = client();
    let get = |path: &str| http.get(format!("{}{path}", server.base)).bearer_auth("t0ken");

    // Auth on /v1, not on health.
    let anonymous = http.get(format!("{}/v1/tasks", server.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        http.get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Pagination with a cursor and a Link header; the pages add up to the catalogue.
    let first = get("/v1/tasks?limit=2").send().await.unwrap();
    assert_eq!(first.status(), 200);
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("rel=\"next\"") && link.contains("cursor="), "{link}");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let mut names = Vec::new();
    let mut page: serde_json::Value = first.json().await.unwrap();
    loop {
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned()),
        );
        let Some(next) = page["next"].as_str() else { break };
        page = get(next).send().await.unwrap().json().await.unwrap();
    }
    assert_eq!(
        names,
        ["task-00000", "task-00001", "task-00002", "task-00003", "task-00004"]
    );

    // Conditional requests.
    let again = get("/v1/tasks?limit=2")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let bundle = get("/v1/tasks/task-00001/1.0.0").send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    let bundle_etag = bundle.headers()["etag"].to_str().unwrap().to_owned();
    let document: serde_json::Value = bundle.json().await.unwrap();
    assert_eq!(
        bundle_etag,
        format!("\"{}\"", document["digest"].as_str().unwrap()),
        "the digest is the ETag"
    );
    let not_modified = get("/v1/tasks/task-00001/1.0.0")
        .header("if-none-match", &bundle_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    // Never seen, and no longer available.
    assert_eq!(get("/v1/tasks/nope").send().await.unwrap().status(), 404);
    assert_eq!(get("/v1/tasks/task-00001/9.9.9").send().await.unwrap().status(), 404);
    assert_eq!(get("/v1/tasks/task-00004/1.0.0").send().await.unwrap().status(), 410);
    let versions: serde_json::Value = get("/v1/tasks/task-00004").send().await.unwrap().json().await.unwrap();
    assert_eq!(versions["versions"][0]["available"], false);

    // gzip when asked (with a client that leaves the encoding alone).
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let zipped = raw
        .get(format!("{}/v1/tasks", server.base))
        .bearer_auth("t0ken")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        zipped.headers().get("content-encoding").map(|v| v.to_str().unwrap()),
        Some("gzip")
    );

    // Metrics count what happened; with a token, they are behind it too.
    let anonymous = http.get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let metrics = get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("taskreg_task_versions{available=\"true\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("taskreg_http_requests_total{route=\"/v1/tasks/{name}/{version}\",status=\"410\"} 1"),
        "{metrics}"
    );

    // The OpenAPI document describes exactly the served routes.
    let openapi: serde_json::Value = get("/v1/openapi.json").send().await.unwrap().json().await.unwrap();
    let mut documented: Vec<&str> = openapi["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut served: Vec<&str> = registry_host::serve::ROUTES.iter().map(|(p, _)| *p).collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    for path in served {
        let concrete = path.replace("{name}", "task-00000").replace("{version}", "1.0.0");
        let status = get(&concrete).send().await.unwrap().status();
        assert_eq!(status, 200, "{concrete} is served");
    }
}

/// Issue 10, item 11: `serve` had no header-read timeout and no connection cap: ~20,000
/// half-open connections exhausted its file descriptors and `/healthz` stopped answering.
/// Here the server may open 64 files, and 150 clients connect and send nothing.
#[tokio::test(flavor = "multi_thread")]
async fn half_open_connections_cannot_starve_the_server() {
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 3).unwrap();
    fs::write(
        work.path().join("taskreg.toml"),
        "[serve]\nmax_connections = 20\nheader_read_timeout = \"1s\"\n",
    )
    .unwrap();
    let a = Taskreg::new(format!("sqlite://{}", work.path().join("a.db").display()), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start_with_file_limit(&a, 64, &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..150 {
        // Connections past the cap wait in the backlog; none is refused by the kernel here.
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // This test's own client: the provider is installed here too, not only by `client()`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let health = http.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200, "answered after {:?}", started.elapsed());

    // An accepted connection that sends no request is closed after the timeout.
    let mut lazy = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), {
        use tokio::io::AsyncReadExt;
        lazy.read(&mut buffer)
    })
    .await
    .expect("the server closes the idle connection");
    assert!(
        matches!(read, Ok(0) | Err(_)) || buffer.starts_with(b"HTTP/1.1 408"),
        "{read:?}"
    );
    drop(idle);
}

/// Issue 10, item 11: the token only as `Bearer` with a capital B and only on the command
/// line (visible in `ps`). The scheme is case-insensitive, and the token may come from a file.
#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_read_from_a_file_and_the_scheme_is_case_insensitive() {
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 2).unwrap();
    fs::write(work.path().join("token"), "s3cret-from-file\n").unwrap();
    let a = Taskreg::new(format!("sqlite://{}", work.path().join("a.db").display()), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&a, &["--token-file", "token"]);
    let http = client();
    let status = |scheme_and_token: &'static str| {
        let request = http
            .get(format!("{}/v1/tasks", server.base))
            .header("authorization", scheme_and_token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("Bearer s3cret-from-file").await, 200);
    assert_eq!(status("bearer s3cret-from-file").await, 200);
    assert_eq!(status("BEARER  s3cret-from-file").await, 200);
    assert_eq!(status("Bearer s3cret-from-fil").await, 401);
    assert_eq!(status("Basic s3cret-from-file").await, 401);
    assert_eq!(status("Bearer").await, 401);
    // The token is nowhere in the process's arguments.
    let cmdline = fs::read(format!("/proc/{}/cmdline", server.child.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_route_with_a_requirement_answers_the_bundle_of_the_newest_match() {
    let (work, taskreg) = taskreg_tests::workspace();
    for (folder, version) in [("a", "1.2.0"), ("b", "1.4.1"), ("c", "2.0.0")] {
        write_named_task(&work.path().join("tasks").join(folder), "calc", version, version.len()).unwrap();
    }
    taskreg.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&taskreg, &[]);
    let http = client();

    let answer = http
        .get(format!("{}/v1/tasks/calc?req=%5E1", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-location"], "/v1/tasks/calc/1.4.1");
    let etag = answer.headers()["etag"].to_str().unwrap().to_owned();
    let bundle: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(bundle["version"], "1.4.1");
    assert!(bundle["files"]["main.js"].is_string(), "{bundle}");
    // The same bundle, and the same ETag, as the version's own route.
    let direct = http
        .get(format!("{}/v1/tasks/calc/1.4.1", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.headers()["etag"].to_str().unwrap(), etag);

    let none = http
        .get(format!("{}/v1/tasks/calc?req=%5E3", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    let bad = http
        .get(format!("{}/v1/tasks/calc?req=banana", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let error: serde_json::Value = bad.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("not a version requirement"),
        "{error}"
    );
    // The OpenAPI document describes the parameter.
    let openapi: serde_json::Value = http
        .get(format!("{}/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parameters = &openapi["paths"]["/v1/tasks/{name}"]["get"]["parameters"];
    assert!(
        parameters
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "req" && p["in"] == "query"),
        "{parameters}"
    );
}

/// Issue 14: a second registry syncing 2,000 tasks page by page, from a catalogue that
/// changes after it read the first page (tasks removed, added before and after its cursor,
/// one edited in place), ends complete and correct on its next run.
#[tokio::test(flavor = "multi_thread")]
async fn a_registry_syncing_from_a_catalogue_that_changes_mid_listing_is_correct_on_its_next_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let work = tempfile::tempdir().unwrap();
    let tasks = work.path().join("tasks");
    let folders = write_tree(&tasks, 2_000).unwrap();
    let a = Taskreg::new(format!("sqlite://{}", work.path().join("a.db").display()), work.path());
    a.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&a, &[]);

    // B reads A through a loopback proxy that changes A's catalogue once, right before
    // answering the first request for a page after the first.
    let changed = Arc::new(AtomicBool::new(false));
    let change_catalogue = {
        let (a, tasks) = (Taskreg::new(a.database_url.clone(), a.dir.clone()), tasks.clone());
        move || {
            for folder in &folders[..10] {
                fs::remove_dir_all(folder).unwrap();
            }
            for i in 0..5 {
                write_named_task(
                    &tasks.join(format!("new-{i}")),
                    &format!("aaa-new-{i}"),
                    "1.0.0",
                    5_000 + i,
                )
                .unwrap();
            }
            write_named_task(&tasks.join("late"), "task-01999b", "1.0.0", 6_000).unwrap();
            fs::write(
                folders[1_500].join("main.js"),
                "(function (input) {\n  return { sum: input.a + input.b };\n})\n",
            )
            .unwrap();
            a.run(&["sync", "tasks"]).assert_code(0);
        }
    };
    let change_catalogue = Arc::new(std::sync::Mutex::new(Some(change_catalogue)));
    let upstream = server.base.clone();
    let http = client();
    let proxy = axum::Router::new().fallback({
        let changed = changed.clone();
        move |request: axum::extract::Request| {
            let (http, upstream, changed, change) = (
                http.clone(),
                upstream.clone(),
                changed.clone(),
                change_catalogue.clone(),
            );
            async move {
                let query = request.uri().query().unwrap_or_default().to_owned();
                if query.contains("cursor=") && !changed.swap(true, Ordering::SeqCst) {
                    let change = change.lock().unwrap().take().expect("changed once");
                    tokio::task::spawn_blocking(change).await.unwrap();
                }
                let mut forwarded = http.get(format!("{upstream}{}", request.uri()));
                // Hop-by-hop and encoding headers stay behind: the proxy answers plainly.
                let passes = |name: &str| {
                    ![
                        "host",
                        "connection",
                        "content-length",
                        "transfer-encoding",
                        "accept-encoding",
                        "content-encoding",
                    ]
                    .contains(&name)
                };
                for (name, value) in request.headers() {
                    if passes(name.as_str()) {
                        forwarded = forwarded.header(name.as_str(), value.as_bytes());
                    }
                }
                let answer = forwarded.send().await.unwrap();
                let mut response = axum::response::Response::builder().status(answer.status().as_u16());
                for (name, value) in answer.headers().iter().filter(|(name, _)| passes(name.as_str())) {
                    response = response.header(name.as_str(), value.as_bytes());
                }
                response
                    .body(axum::body::Body::from(answer.bytes().await.unwrap()))
                    .unwrap()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, proxy).await });

    let b_dir = work.path().join("b");
    fs::create_dir_all(&b_dir).unwrap();
    fs::write(
        b_dir.join("taskreg.toml"),
        format!("[[sources]]\nname = \"a\"\ntype = \"http\"\nurl = \"{proxy_base}/v1/tasks\"\n"),
    )
    .unwrap();
    let b = Taskreg::new(format!("sqlite://{}", b_dir.join("b.db").display()), &b_dir);
    let sync_b = || {
        let b = Taskreg::new(b.database_url.clone(), b.dir.clone());
        tokio::task::spawn_blocking(move || b.run(&["--json", "sync"]))
    };
    let first = sync_b().await.unwrap();
    assert!(
        changed.load(Ordering::SeqCst),
        "the catalogue changed during B's listing"
    );
    first.assert_code(0);
    assert!(first.json()["added"].as_u64().unwrap() >= 1_990, "{}", first.stdout);

    let second = sync_b().await.unwrap();
    second.assert_code(0);
    let report = second.json();
    assert_eq!(report["sources"][0]["status"], "ok", "{report}");
    let (a_list, b_list) = (list(&a), list(&b));
    assert_eq!(a_list.len(), 1_996, "2,000 - 10 removed + 6 added");
    assert_eq!(
        b_list, a_list,
        "B holds exactly what A offers: names, versions and digests"
    );
    let third = sync_b().await.unwrap();
    assert_eq!(third.json()["written"], false, "and stays so: {}", third.stdout);
}
