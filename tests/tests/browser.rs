//! The web pages in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver, with fantoccini) against `taskreg serve --watch --token …` over a copy of
//! the shipped example tasks. It signs in with the form, searches, opens a task, and sees a
//! problem raised by an edit on disk appear on the open page without a reload.
//!
//! Screenshots of each page are written to `target/tmp/browser/` (printed by the test) for a
//! person to look at. `.ci/run` installs `chromium` and `chromium-driver`; elsewhere set
//! `TASKREG_TEST_CHROMIUM` and `TASKREG_TEST_CHROMEDRIVER` to other binaries.

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use taskreg_tests::{Server, Taskreg, copy_folder, repository_root};

const TOKEN: &str = "browser-test-token";

/// How long the page may take to show what the test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_signs_in_searches_opens_a_task_and_sees_a_broken_edit_appear_live() {
    let work = tempfile::tempdir().unwrap();
    copy_folder(&repository_root().join("examples/tasks"), &work.path().join("tasks"));
    let taskreg = Taskreg::new(format!("sqlite://{}", work.path().join("c.db").display()), work.path());
    taskreg.configure("[[sources]]\nname = \"examples\"\ntype = \"filesystem\"\npath = \"tasks\"\n");
    let server = Server::start(&taskreg, &["--watch", "--debounce-ms", "50", "--token", TOKEN]);
    let shots = screenshots_folder();
    let driver = ChromeDriver::start();
    let browser = driver.session(&[]).await;

    // Signed out, the pages send the browser to the form; the token signs it in.
    browser.goto(&format!("{}/ui/", server.base)).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with("/ui/login"));
    shoot(&browser, &shots, "login").await;
    sign_in(&browser).await;
    // The initial sync of `serve --watch` may still be running: wait for its tasks.
    let listed = wait_for_text(&browser, &format!("{}/ui/", server.base), "main table", "weather-api").await;
    assert!(
        listed.contains("addition") && listed.contains("legacy-greeting"),
        "{listed}"
    );
    shoot(&browser, &shots, "catalogue").await;

    // The keyboard reaches the skip link first, then the navigation.
    let mut focus_order = Vec::new();
    for _ in 0..2 {
        let tab = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: Key::Tab.into() })
            .then(KeyAction::Up { value: Key::Tab.into() });
        browser.perform_actions(tab).await.unwrap();
        let focused = browser
            .execute("return document.activeElement.textContent", vec![])
            .await
            .unwrap();
        focus_order.push(focused.as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(focus_order, ["Skip to the content", "taskreg"]);

    // Search by text: the form's query narrows the rows.
    let search = browser.find(Locator::Id("q")).await.unwrap();
    search.send_keys("weather\u{E007}").await.unwrap();
    wait_until(&browser, "the search's results", |url, _| url.contains("q=weather")).await;
    let rows = browser.find_all(Locator::Css("main tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "one task matches `weather`");
    assert!(rows[0].text().await.unwrap().contains("weather-api"));
    shoot(&browser, &shots, "search").await;

    // Open the task: its page, with the script highlighted by the server.
    browser
        .find(Locator::LinkText("weather-api"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(&browser, "the task page", |url, _| {
        url.ends_with("/ui/tasks/weather-api")
    })
    .await;
    let heading = browser.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
    assert!(heading.starts_with("weather-api"), "{heading}");
    let keywords = browser.find_all(Locator::Css("pre.script .hl-keyword")).await.unwrap();
    assert!(!keywords.is_empty(), "the script is highlighted");
    assert!(
        browser.find_all(Locator::Css("main h2")).await.unwrap().len() >= 5,
        "metadata, origins, schemas, script, tests and versions"
    );
    shoot(&browser, &shots, "task").await;
    let script = browser
        .find(Locator::Css("pre.script"))
        .await
        .unwrap()
        .screenshot()
        .await
        .unwrap();
    std::fs::write(shots.join("script.png"), script).unwrap();
    assert!(
        browser
            .find_all(Locator::Css(".severity-error"))
            .await
            .unwrap()
            .is_empty(),
        "no problem before the edit"
    );

    // A broken edit on disk: the open page shows the problem without being reloaded.
    browser
        .execute(
            "window.taskregMarker = 'this page was not reloaded'; return true",
            vec![],
        )
        .await
        .unwrap();
    std::fs::write(work.path().join("tasks/weather-api/input.schema.json"), "{ \"type\": ").unwrap();
    let deadline = Instant::now() + PATIENCE;
    let problem = loop {
        let cells = browser.find_all(Locator::Css("main td code")).await.unwrap();
        let mut texts = Vec::new();
        for cell in &cells {
            texts.push(cell.text().await.unwrap_or_default());
        }
        if let Some(code) = texts.into_iter().find(|t| t == "json.invalid") {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "the problem did not appear on the open page: {}",
            server.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(problem, "json.invalid");
    let marker = browser
        .execute("return window.taskregMarker || null", vec![])
        .await
        .unwrap();
    assert_eq!(marker, "this page was not reloaded", "updated in place, not reloaded");
    let live = browser.find(Locator::Id("live")).await.unwrap().text().await.unwrap();
    assert!(live.starts_with("Updated"), "{live}");
    assert!(
        browser
            .find(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .starts_with("weather-api"),
        "the last good version stays on the page"
    );
    shoot(&browser, &shots, "task-with-problem").await;

    // The problems page lists it under its source and task, linked.
    browser.goto(&format!("{}/ui/problems", server.base)).await.unwrap();
    let problems = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(
        problems.contains("json.invalid") && problems.contains("input.schema.json"),
        "{problems}"
    );
    browser
        .find(Locator::Css("main a[href='/ui/tasks/weather-api']"))
        .await
        .unwrap();
    shoot(&browser, &shots, "problems").await;

    // The sources page draws the scans it recorded.
    browser.goto(&format!("{}/ui/sources", server.base)).await.unwrap();
    browser.find(Locator::Css("main svg")).await.unwrap();
    let sources = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(sources.contains("examples"), "{sources}");
    shoot(&browser, &shots, "sources").await;

    // Signing out: the pages ask for the token again.
    browser
        .find(Locator::Css("form.sign-out button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(&browser, "the login form", |url, _| url.ends_with("/ui/login")).await;
    browser.goto(&format!("{}/ui/problems", server.base)).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with("/ui/login"));
    browser.close().await.unwrap();

    // A system in dark mode gets the dark theme.
    let dark = driver.session(&["--force-dark-mode"]).await;
    dark.goto(&format!("{}/ui/login", server.base)).await.unwrap();
    sign_in(&dark).await;
    wait_until(&dark, "the catalogue", |url, _| url.ends_with("/ui/")).await;
    let background = dark
        .execute("return getComputedStyle(document.body).backgroundColor", vec![])
        .await
        .unwrap();
    assert_eq!(background, "rgb(13, 17, 23)", "the dark theme's background");
    shoot(&dark, &shots, "catalogue-dark").await;
    dark.close().await.unwrap();
    drop(server);
}

/// Fills the login form with the token and sends it.
async fn sign_in(browser: &Client) {
    let token = browser.find(Locator::Id("token")).await.unwrap();
    token.send_keys(TOKEN).await.unwrap();
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Polls `url` until the text of the first `selector` contains `wanted`, reloading between
/// tries (the catalogue may not be synced yet); returns that text.
async fn wait_for_text(browser: &Client, url: &str, selector: &str, wanted: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        browser.goto(url).await.unwrap();
        if let Ok(element) = browser.find(Locator::Css(selector)).await {
            let text = element.text().await.unwrap_or_default();
            if text.contains(wanted) {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never showed `{wanted}` in `{selector}`"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `ready(url, title)` holds for the browser's current page.
async fn wait_until(browser: &Client, what: &str, ready: impl Fn(&str, &str) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let url = browser.current_url().await.unwrap().to_string();
        let title = browser.title().await.unwrap_or_default();
        if ready(&url, &title) {
            return;
        }
        assert!(Instant::now() < deadline, "never reached {what}: at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes a screenshot of the current page as `NAME.png` into `folder`.
async fn shoot(browser: &Client, folder: &Path, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(folder.join(format!("{name}.png")), png).unwrap();
}

/// The test's output folder for screenshots, emptied first.
fn screenshots_folder() -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    eprintln!("screenshots in {}", folder.display());
    folder
}

/// A chromedriver process on a free loopback port, stopped on drop.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let binary = std::env::var("TASKREG_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}): install Debian's chromium-driver, as .ci/run does")
            });
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A new headless Chromium session, with `extra` command-line switches.
    async fn session(&self, extra: &[&str]) -> Client {
        let chromium = std::env::var("TASKREG_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--hide-scrollbars",
        ];
        args.extend_from_slice(extra);
        let options = serde_json::json!({ "binary": chromium, "args": args });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session through chromedriver at {}: {e}", self.url))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
