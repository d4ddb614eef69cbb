//! The web pages of `taskreg serve` (`/ui/`), through the real binary and real HTTP.

use std::fs;
use taskreg_tests::{Server, Taskreg, write_named_task};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn html(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A catalogue with a task whose description holds markup, a second version, and a
/// broken edit that leaves a problem on the task's origin.
fn catalogue(dir: &std::path::Path) -> Taskreg {
    let tasks = dir.join("tasks");
    write_named_task(&tasks.join("weather"), "weather-api", "2.0.0", 1).unwrap();
    write_named_task(&tasks.join("weather-next"), "weather-api", "2.0.1", 2).unwrap();
    write_named_task(&tasks.join("adder"), "adder", "1.0.0", 3).unwrap();
    let metadata = tasks.join("adder/metadata.json");
    let text = fs::read_to_string(&metadata).unwrap();
    fs::write(
        &metadata,
        text.replace(
            "\"description\": \"Adds 3 to the sum of two numbers.\"",
            "\"description\": \"<script>alert('x')</script> & more\"",
        ),
    )
    .unwrap();
    let taskreg = Taskreg::new(format!("sqlite://{}", dir.join("c.db").display()), dir);
    taskreg.run(&["sync", "tasks"]).assert_code(0);
    // A broken edit of 2.0.1: the stored version stays, with a problem on its origin.
    fs::write(tasks.join("weather-next/input.schema.json"), "{ not json").unwrap();
    taskreg.run(&["sync", "tasks"]);
    taskreg
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalogue_and_task_pages_show_the_tasks_versions_and_problems_and_escape_what_they_quote() {
    let work = tempfile::tempdir().unwrap();
    let taskreg = catalogue(work.path());
    let server = Server::start(&taskreg, &[]);
    let client = client();

    // Browsers are sent to the pages; API clients still get the service document.
    let browser = client
        .get(format!("{}/", server.base))
        .header("Accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status().as_u16(), 303);
    assert_eq!(browser.headers()["location"], "/ui/");
    let (status, service) = html(&client, &format!("{}/", server.base)).await;
    assert_eq!(status, 200);
    assert!(service.contains("\"index\""), "{service}");

    let (status, page) = html(&client, &format!("{}/ui/", server.base)).await;
    assert_eq!(status, 200);
    assert!(!page.contains("/ui/logout"), "no token, nothing to sign out of");
    assert!(
        page.contains("<a href=\"/ui/tasks/weather-api\">weather-api</a>"),
        "{page}"
    );
    assert!(page.contains("<a href=\"/ui/tasks/adder\">adder</a>"));
    assert!(page.contains("<strong>2</strong>tasks"), "{page}");
    assert!(page.contains("<strong>3</strong>versions"), "{page}");
    assert!(
        page.contains("<span class=\"severity-error\">1 error</span>"),
        "weather-api's row counts its one problem: {page}"
    );

    // Search by text and the problem filter.
    let (_, found) = html(&client, &format!("{}/ui/?q=alert", server.base)).await;
    assert!(
        found.contains("1 of 2 tasks") && found.contains("/ui/tasks/adder"),
        "{found}"
    );
    let (_, problematic) = html(&client, &format!("{}/ui/?show=problems", server.base)).await;
    assert!(
        problematic.contains("1 of 2 tasks") && problematic.contains("/ui/tasks/weather-api"),
        "{problematic}"
    );

    // The task page: the newest available version, its history and its problem.
    let (status, task) = html(&client, &format!("{}/ui/tasks/weather-api", server.base)).await;
    assert_eq!(status, 200);
    assert!(
        task.contains("<h1>weather-api <span class=\"muted\">2.0.1</span></h1>"),
        "{task}"
    );
    assert!(
        task.contains("/ui/tasks/weather-api/2.0.0"),
        "the history links every version"
    );
    assert!(task.contains("json.invalid"), "the problem of the broken edit: {task}");
    assert!(task.contains("input.schema.json"));
    let (status, older) = html(&client, &format!("{}/ui/tasks/weather-api/2.0.0", server.base)).await;
    assert_eq!(status, 200);
    assert!(older.contains("<span class=\"muted\">2.0.0</span>"));

    // A description holding markup is shown as text.
    let (_, adder) = html(&client, &format!("{}/ui/tasks/adder", server.base)).await;
    assert!(!adder.contains("<script>alert"), "{adder}");
    assert!(
        adder.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; more"),
        "{adder}"
    );

    // The problems page groups by source then task, linked to the task.
    let (status, problems) = html(&client, &format!("{}/ui/problems", server.base)).await;
    assert_eq!(status, 200);
    assert!(
        problems.contains("<a href=\"/ui/tasks/weather-api\">weather-api</a>"),
        "{problems}"
    );
    assert!(problems.contains("json.invalid") && problems.contains("input.schema.json"));
    // The sources page: the latest scan, and its scans drawn by the server.
    let (status, sources) = html(&client, &format!("{}/ui/sources", server.base)).await;
    assert_eq!(status, 200);
    assert!(
        sources.contains("<svg") && sources.contains("scan durations of the last 2 runs"),
        "{sources}"
    );

    let (status, missing) = html(&client, &format!("{}/ui/tasks/nothing-here", server.base)).await;
    assert_eq!(status, 404);
    assert!(missing.contains("nothing-here"));
    let css = client
        .get(format!("{}/ui/style.css", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        css.headers()["cache-control"],
        "no-cache",
        "an unversioned URL is revalidated"
    );
    let etag = css.headers()["etag"].to_str().unwrap().to_owned();
    let again = client
        .get(format!("{}/ui/style.css", server.base))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    // The pages link the assets by their content's version, which browsers keep for a year.
    for asset in ["style.css", "live.js"] {
        let at = page.find(&format!("/ui/{asset}?v=")).expect("a versioned asset link");
        let href = &page[at..at + page[at..].find('"').unwrap()];
        let versioned = client.get(format!("{}{href}", server.base)).send().await.unwrap();
        assert_eq!(versioned.status().as_u16(), 200, "{href}");
        assert_eq!(
            versioned.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{href}"
        );
    }
    let stale = client
        .get(format!("{}/ui/live.js?v=0000000000000000", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.headers()["cache-control"],
        "no-cache",
        "an old version is not kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_the_pages_ask_to_sign_in_and_the_cookie_opens_them() {
    let work = tempfile::tempdir().unwrap();
    let taskreg = catalogue(work.path());
    let server = Server::start(&taskreg, &["--token", "s3cret-token"]);
    let client = client();

    let unsigned = client.get(format!("{}/ui/", server.base)).send().await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 303);
    assert_eq!(unsigned.headers()["location"], "/ui/login");
    let (status, form) = html(&client, &format!("{}/ui/login", server.base)).await;
    assert_eq!(status, 200);
    assert!(form.contains("type=\"password\""), "{form}");
    assert!(!form.contains("s3cret-token"), "no page shows the token");

    let wrong = client
        .post(format!("{}/ui/login", server.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("token=guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let right = client
        .post(format!("{}/ui/login", server.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("token=s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 303);
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let page = client
        .get(format!("{}/ui/", server.base))
        .header("Cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let text = page.text().await.unwrap();
    assert!(text.contains("weather-api"));
    assert!(
        text.contains("action=\"/ui/logout\""),
        "behind a token, pages offer to sign out"
    );
    // A proxy may send the bearer token instead; the API takes the cookie too.
    let proxied = client
        .get(format!("{}/ui/tasks/adder", server.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status().as_u16(), 200);
    let api = client.get(format!("{}/v1/tasks", server.base)).send().await.unwrap();
    assert_eq!(api.status().as_u16(), 401);

    // Signing out expires the cookie and goes back to the form.
    let out = client
        .post(format!("{}/ui/logout", server.base))
        .header("Cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(out.headers()["location"], "/ui/login");
    let expired = out.headers()["set-cookie"].to_str().unwrap();
    assert!(
        expired.starts_with("taskreg_token=;") && expired.contains("Max-Age=0"),
        "{expired}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_catalogue_is_listed_a_page_at_a_time_and_failing_sources_and_unloaded_tasks_are_counted() {
    let work = tempfile::tempdir().unwrap();
    let tasks = work.path().join("tasks");
    let folders = taskreg_tests::write_tree(&tasks, 450).unwrap();
    // A task that never loads: its problem has no stored task to be listed under.
    fs::write(folders[7].join("metadata.json"), "{ broken").unwrap();
    // Escapes in the JSON: found by what they stand for.
    let metadata = folders[3].join("metadata.json");
    let text = fs::read_to_string(&metadata).unwrap();
    fs::write(
        &metadata,
        text.replace("Adds 3 to", "Says \\\"h\\u00e9llo\\\" and adds 3 to"),
    )
    .unwrap();
    let taskreg = Taskreg::new(format!("sqlite://{}", work.path().join("c.db").display()), work.path());
    taskreg.configure(&format!(
        "[[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = \"tasks\"\n\n\
         [[sources]]\nname = \"gone\"\ntype = \"filesystem\"\npath = {}\n",
        taskreg_tests::toml_path(&work.path().join("missing-folder"))
    ));
    taskreg.run(&["sync"]);
    let server = Server::start(&taskreg, &[]);
    let client = client();

    let (_, first) = html(&client, &format!("{}/ui/", server.base)).await;
    assert!(first.contains("<strong>449</strong>tasks"), "{}", head(&first));
    assert!(first.contains("449 of 449 tasks, 1–200 shown"), "{}", head(&first));
    assert_eq!(first.matches("<a href=\"/ui/tasks/").count(), 200, "one page of rows");
    assert!(first.contains("<strong>1</strong>sources failing"), "{}", head(&first));
    assert!(
        first.contains("1 problem is at a place that holds no stored task"),
        "the task that never loaded is counted: {}",
        head(&first)
    );
    assert!(
        first.contains("page 1 of 3") && first.contains("rel=\"next\""),
        "{}",
        head(&first)
    );
    assert!(!first.contains("rel=\"prev\""));

    let (_, last) = html(&client, &format!("{}/ui/?q=&show=&page=3", server.base)).await;
    assert_eq!(last.matches("<a href=\"/ui/tasks/").count(), 49, "{}", head(&last));
    assert!(
        last.contains("401–449 shown") && last.contains("rel=\"prev\""),
        "{}",
        head(&last)
    );
    // A page past the end shows the last one; the search keeps its words across pages.
    let (_, beyond) = html(&client, &format!("{}/ui/?page=99", server.base)).await;
    assert!(beyond.contains("page 3 of 3"), "{}", head(&beyond));
    let (_, unavailable) = html(&client, &format!("{}/ui/?show=unavailable", server.base)).await;
    assert!(unavailable.contains("0 of 449 tasks"), "{}", head(&unavailable));
    let (_, unknown) = html(&client, &format!("{}/ui/?show=whatever", server.base)).await;
    assert!(
        unknown.contains("449 of 449 tasks"),
        "an unknown filter lists all: {}",
        head(&unknown)
    );
    let (_, generated) = html(&client, &format!("{}/ui/?q=generated+math", server.base)).await;
    assert!(
        generated.contains("href=\"/ui/?q=generated+math&amp;show=&amp;page=2\""),
        "{}",
        head(&generated)
    );
    let (_, quoted) = html(&client, &format!("{}/ui/?q=%22h%C3%A9llo%22", server.base)).await;
    assert!(
        quoted.contains("1 of 449 tasks") && quoted.contains("/ui/tasks/task-00003"),
        "{}",
        head(&quoted)
    );
    let (_, searched) = html(&client, &format!("{}/ui/?q=task-000", server.base)).await;
    assert!(searched.contains("99 of 449 tasks"), "{}", head(&searched));
    assert!(!searched.contains("rel=\"next\""), "{}", head(&searched));

    // The listing is kept between requests, until the catalogue changes: a sync by another
    // process shows at the next request.
    taskreg_tests::write_named_task(&tasks.join("late/newcomer"), "newcomer", "1.0.0", 9).unwrap();
    taskreg.run(&["sync"]);
    let (_, after) = html(&client, &format!("{}/ui/?q=newcomer", server.base)).await;
    assert!(after.contains("1 of 450 tasks"), "{}", head(&after));
}

/// The start of a page's content and its end (counts, pager, notes), for failure messages.
fn head(page: &str) -> String {
    let main = page.find("<main>").map_or(page, |at| &page[at..]);
    let start: String = main.chars().take(1200).collect();
    let end: String = main
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{start} … {end}")
}
