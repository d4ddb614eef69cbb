//! The built-in `http` source: another taskreg (`taskreg serve`) or a static registry.
//!
//! The registry protocol is in `docs/http-protocol.md`: an index of
//! `{name, version, digest, available, href}` items, paginated with `next` (or a
//! `Link: rel="next"` header), and one bundle per version with every file. A static web
//! server can host it as an index file plus bundle files; hrefs are resolved against the
//! index URL.
//!
//! - The `url` is a registry's address (`taskreg serve` answers `/` with a service
//!   document naming its index, as Cargo's sparse registries publish `config.json`; a
//!   static registry may publish the same document as a file) or its index directly.
//! - Conditional requests: the index's `ETag` is kept with the listing it stands for, and
//!   handed to the host as the source's state ([`Source::saved_state`]), which stores it in
//!   the catalogue: an unchanged registry costs one `304` per poll, the first poll of a
//!   new process (a one-shot `taskreg sync`) included.
//! - Entries are fingerprinted by digest: only new or changed versions are downloaded, and
//!   every bundle's files must hash to the digest the index announced.
//! - Responses are capped in size; requests time out; connection errors, timeouts, `5xx`
//!   and `429` are retried with exponential backoff and jitter (honouring `Retry-After`),
//!   other `4xx` are not. Any failure fails the scan, so nothing is removed.
//! - Authentication (`bearer`, `basic`, or a named header) is per source, never taken
//!   from the environment, and sent only to the origin (scheme, host, port) of the
//!   configured `url`: an `href` or `next` link to another origin is fetched without it.
//! - A listing must be read to its end to count: the whole listing has a deadline
//!   (`scan_timeout_ms`, default 120 s) and a page cap (`max_pages`, default 10,000), and a
//!   `next` link to a page already read is a loop; each fails the scan, removing nothing.
//! - A bundle is refused by its announced size before it is read, and its files against
//!   the registry's read limits.

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use registry_core::protocol::{BundleDocument, IndexPage, ServiceDocument};
use registry_core::{Bundle, Entry, Limits, ReadBudget, Scan, Source, SourceError, SourceKind, SourceSpec};
use reqwest::StatusCode;
use reqwest::header::{ETAG, HeaderMap, HeaderName, HeaderValue, IF_NONE_MATCH, LINK, RETRY_AFTER};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

inventory::submit! {
    SourceKind {
        name: "http",
        description: "a taskreg registry or a static registry over HTTP (`url`)",
        settings_schema: || serde_json::to_value(schemars::schema_for!(HttpSettings)).unwrap_or_default(),
        build: HttpSource::from_spec,
    }
}

/// How to authenticate, per source. Sent only to the origin (scheme, host and port) of the
/// configured `url`: a page or bundle link to another origin is fetched without it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Auth {
    Bearer { token: String },
    Basic { username: String, password: String },
    Header { name: String, value: String },
}

/// The `[[sources]]` settings of an `http` source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// The index: `https://registry.example/v1/tasks`, or a static `…/index.json`.
    pub url: String,
    #[serde(default)]
    pub auth: Option<Auth>,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::max_response_bytes")]
    pub max_response_bytes: u64,
    #[serde(default = "defaults::retries")]
    pub retries: usize,
    #[serde(default = "defaults::backoff_ms")]
    pub backoff_ms: u64,
    /// The longest `Retry-After` that is honoured.
    #[serde(default = "defaults::max_retry_after_ms")]
    pub max_retry_after_ms: u64,
    /// The whole listing (every page, every retry) must be read within this; a listing
    /// not read to its end fails the scan, so nothing is removed. One bundle's download,
    /// retries included, has the same deadline.
    #[serde(default = "defaults::scan_timeout_ms")]
    pub scan_timeout_ms: u64,
    /// The most index pages one listing may have.
    #[serde(default = "defaults::max_pages")]
    pub max_pages: usize,
}

mod defaults {
    pub fn timeout_ms() -> u64 {
        30_000
    }
    pub fn max_response_bytes() -> u64 {
        64 * 1024 * 1024
    }
    pub fn retries() -> usize {
        4
    }
    pub fn backoff_ms() -> u64 {
        250
    }
    pub fn max_retry_after_ms() -> u64 {
        30_000
    }
    pub fn scan_timeout_ms() -> u64 {
        120_000
    }
    pub fn max_pages() -> usize {
        10_000
    }
}

impl HttpSettings {
    pub fn new(url: impl Into<String>) -> Self {
        serde_json::from_value(serde_json::json!({ "url": url.into() })).expect("defaults for every other field")
    }
}

/// The last index seen, for conditional requests and to find bundles.
#[derive(Debug, Default)]
struct Listing {
    /// The index's first page, once found (the configured `url`, or where its service
    /// document points).
    index: Option<Url>,
    etag: Option<String>,
    /// locator (`name@version`) → (bundle URL, digest)
    items: HashMap<String, (Url, String)>,
    entries: Vec<Entry>,
}

/// A [`Listing`] as the host keeps it between processes.
#[derive(Debug, Serialize, Deserialize)]
struct SavedListing {
    /// The configured `url` it was read through: a state saved for another URL is ignored.
    url: String,
    index: String,
    etag: String,
    /// `(locator, bundle URL, digest)`, ordered by locator.
    items: Vec<(String, String, String)>,
    /// The signer the index named per locator, for those it named one.
    #[serde(default)]
    signed: Vec<(String, String)>,
}

impl Listing {
    fn saved(&self, url: &Url) -> Option<SavedListing> {
        let mut items: Vec<(String, String, String)> = self
            .items
            .iter()
            .map(|(locator, (href, digest))| (locator.clone(), href.to_string(), digest.clone()))
            .collect();
        items.sort();
        let mut signed: Vec<(String, String)> = self
            .entries
            .iter()
            .filter_map(|e| Some((e.locator.clone(), e.fingerprint.split_once("+signed:")?.1.to_owned())))
            .collect();
        signed.sort();
        Some(SavedListing {
            url: url.to_string(),
            index: self.index.as_ref()?.to_string(),
            etag: self.etag.clone()?,
            items,
            signed,
        })
    }

    fn restored(saved: SavedListing) -> Option<Listing> {
        let mut listing = Listing {
            index: Some(Url::parse(&saved.index).ok()?),
            etag: Some(saved.etag),
            ..Listing::default()
        };
        let signed: HashMap<String, String> = saved.signed.into_iter().collect();
        for (locator, href, digest) in saved.items {
            listing.entries.push(Entry {
                locator: locator.clone(),
                fingerprint: fingerprint(&digest, signed.get(&locator).map(String::as_str)),
            });
            listing.items.insert(locator, (Url::parse(&href).ok()?, digest));
        }
        Some(listing)
    }
}

/// An entry's fingerprint: the digest, and the key the index says signed it, so that a
/// version signed after it was first listed is loaded again for its signature.
fn fingerprint(digest: &str, signed_by: Option<&str>) -> String {
    match signed_by {
        Some(key) => format!("{digest}+signed:{key}"),
        None => digest.to_owned(),
    }
}

/// Bundle requests a sync keeps in flight to one registry (see `Source::loads_in_flight`).
const LOADS_IN_FLIGHT: usize = 32;

/// A service document is small; an index page that is not one lacks its fields.
const SERVICE_DOCUMENT_MAX_BYTES: usize = 16 * 1024;

/// `body` as a service document, when it is one.
fn service_document(body: &[u8]) -> Option<ServiceDocument> {
    (body.len() <= SERVICE_DOCUMENT_MAX_BYTES)
        .then(|| serde_json::from_slice(body).ok())
        .flatten()
}

/// A source reading another registry over HTTP.
#[derive(Clone)]
pub struct HttpSource {
    name: String,
    index: Url,
    settings: Arc<HttpSettings>,
    /// The credentials' header, sent only to the index's origin.
    credentials: Option<(HeaderName, HeaderValue)>,
    client: reqwest::Client,
    listing: Arc<Mutex<Listing>>,
    /// What one task's load reads at most.
    read: Limits,
}

/// Why one request failed, and whether another try may help.
#[derive(Debug)]
struct Failure {
    message: String,
    retry: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn fatal(message: String) -> Self {
        Failure {
            message,
            retry: false,
            retry_after: None,
        }
    }

    fn transient(message: String) -> Self {
        Failure {
            message,
            retry: true,
            retry_after: None,
        }
    }
}

impl HttpSource {
    pub fn new(name: impl Into<String>, settings: HttpSettings) -> Result<Self, SourceError> {
        let name = name.into();
        let config = |reason: String| SourceError::Config {
            source_name: name.clone(),
            reason,
        };
        let index = Url::parse(&settings.url).map_err(|e| config(format!("`url` {}: {e}", settings.url)))?;
        if !matches!(index.scheme(), "http" | "https") {
            return Err(config(format!("`url` {} is not http or https", settings.url)));
        }
        // reqwest is built without a default TLS provider (no C toolchain needed): use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let credentials = match &settings.auth {
            None => None,
            Some(Auth::Basic { username, password }) => {
                let encoded = BASE64_STANDARD.encode(format!("{username}:{password}"));
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|e| config(format!("basic credentials: {e}")))?;
                value.set_sensitive(true);
                Some((reqwest::header::AUTHORIZATION, value))
            }
            Some(Auth::Bearer { token }) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| config(format!("bearer token: {e}")))?;
                value.set_sensitive(true);
                Some((reqwest::header::AUTHORIZATION, value))
            }
            Some(Auth::Header { name: header, value }) => {
                let header =
                    HeaderName::from_bytes(header.as_bytes()).map_err(|e| config(format!("header name: {e}")))?;
                let mut value = HeaderValue::from_str(value).map_err(|e| config(format!("header value: {e}")))?;
                value.set_sensitive(true);
                Some((header, value))
            }
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms.min(10_000)))
            .user_agent(concat!("taskreg/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config(format!("HTTP client: {e}")))?;
        Ok(HttpSource {
            name,
            index,
            settings: Arc::new(settings),
            credentials,
            client,
            listing: Arc::default(),
            read: Limits::default(),
        })
    }

    /// Caps what one task's load reads (default: [`Limits::default`]).
    pub fn with_read_limits(mut self, read: Limits) -> Self {
        self.read = read;
        self
    }

    /// Whether `url` is on the configured index's origin (scheme, host and port): the only
    /// place credentials go.
    fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.index.origin()
    }

    /// Builds the source from a `[[sources]]` entry with `type = "http"`.
    pub fn from_spec(spec: &SourceSpec) -> Result<Box<dyn Source>, SourceError> {
        let settings: HttpSettings =
            serde_json::from_value(spec.settings.clone()).map_err(|e| SourceError::Config {
                source_name: spec.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(Box::new(
            HttpSource::new(spec.name.clone(), settings)?.with_read_limits(spec.limits),
        ))
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> SourceError {
        SourceError::Unavailable {
            source_name: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// One GET, retried as the policy says; `None` for `304 Not Modified`. The body is
    /// refused past `cap` bytes (announced or read).
    async fn get(&self, url: &Url, etag: Option<&str>, cap: u64) -> Result<Option<(HeaderMap, Vec<u8>)>, Failure> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.settings.backoff_ms))
            .with_max_delay(Duration::from_millis(self.settings.backoff_ms * 32))
            .with_max_times(self.settings.retries)
            .with_jitter();
        let max_retry_after = Duration::from_millis(self.settings.max_retry_after_ms);
        (|| self.get_once(url, etag, cap))
            .retry(backoff)
            .when(|f: &Failure| f.retry)
            .adjust(move |f: &Failure, delay| delay.map(|d| f.retry_after.map_or(d, |r| r.min(max_retry_after))))
            .notify(|f: &Failure, delay| {
                tracing::warn!(source = %self.name, "{}; retrying in {} ms", f.message, delay.as_millis())
            })
            .await
    }

    async fn get_once(&self, url: &Url, etag: Option<&str>, cap: u64) -> Result<Option<(HeaderMap, Vec<u8>)>, Failure> {
        let mut request = self.client.get(url.clone());
        if let Some((header, value)) = &self.credentials
            && self.same_origin(url)
        {
            request = request.header(header, value);
        }
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Failure::transient(format!("GET {url}: {}", describe(&e))))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !status.is_success() {
            let message = format!("GET {url}: {status}");
            return Err(if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Failure {
                    message,
                    retry: true,
                    retry_after,
                }
            } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                Failure::fatal(format!("{message}: check the source's `auth`"))
            } else {
                Failure::fatal(message)
            });
        }
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(Failure::fatal(format!(
                "GET {url}: the response is larger than the {cap}-byte cap"
            )));
        }
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::transient(format!("GET {url}: the body broke off: {}", describe(&e))))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > cap {
                return Err(Failure::fatal(format!(
                    "GET {url}: the response is larger than the {cap}-byte cap"
                )));
            }
        }
        Ok(Some((headers, body)))
    }

    /// Reads the whole listing within the scan's deadline. A listing cut short (the
    /// deadline, the page cap, a `next` link seen before) fails: only a listing read to its
    /// end may make a task missing.
    async fn fetch_listing(&self) -> Result<(), SourceError> {
        let deadline = Duration::from_millis(self.settings.scan_timeout_ms);
        tokio::time::timeout(deadline, self.fetch_pages())
            .await
            .unwrap_or_else(|_| {
                Err(self.unavailable(format!(
                    "the listing was not read to its end within {}s (`scan_timeout_ms`)",
                    deadline.as_secs_f64()
                )))
            })
    }

    async fn fetch_pages(&self) -> Result<(), SourceError> {
        let cap = self.settings.max_response_bytes;
        let (known_index, etag) = self
            .listing
            .lock()
            .map(|l| (l.index.clone(), l.etag.clone()))
            .unwrap_or_default();
        let first_url = known_index.unwrap_or_else(|| self.index.clone());
        let first = self
            .get(&first_url, etag.as_deref(), cap)
            .await
            .map_err(|f| self.unavailable(f.message))?;
        let Some((headers, body)) = first else {
            return Ok(()); // 304: the listing we have is current
        };
        // The registry's address: its service document says where the index is.
        let (index, headers, body) = match service_document(&body) {
            Some(document) => {
                let index = first_url
                    .join(&document.index)
                    .map_err(|e| self.unavailable(format!("the service document's index {}: {e}", document.index)))?;
                let (headers, body) = self
                    .get(&index, None, cap)
                    .await
                    .map_err(|f| self.unavailable(f.message))?
                    .ok_or_else(|| self.unavailable(format!("{index} answered 304 to an unconditional request")))?;
                (index, headers, body)
            }
            None => (first_url, headers, body),
        };
        let new_etag = headers.get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut listing = Listing {
            index: Some(index.clone()),
            etag: new_etag,
            ..Listing::default()
        };
        let mut page = (index.clone(), headers, body);
        let mut seen = std::collections::HashSet::from([index]);
        loop {
            let (url, headers, body) = page;
            let document: IndexPage = serde_json::from_slice(&body).map_err(|e| {
                self.unavailable(format!(
                    "{url} is neither a registry index nor a service document naming one: {e}"
                ))
            })?;
            for item in document.items.into_iter().filter(|i| i.available) {
                let href = url
                    .join(&item.href)
                    .map_err(|e| self.unavailable(format!("href {}: {e}", item.href)))?;
                let locator = format!("{}@{}", item.name, item.version);
                listing.entries.push(Entry {
                    locator: locator.clone(),
                    fingerprint: fingerprint(&item.digest, item.signed_by.as_deref()),
                });
                listing.items.insert(locator, (href, item.digest));
            }
            let next = document.next.or_else(|| next_link(&headers));
            let Some(next) = next else { break };
            let next = url
                .join(&next)
                .map_err(|e| self.unavailable(format!("next page {next}: {e}")))?;
            if !seen.insert(next.clone()) {
                return Err(self.unavailable(format!("the listing loops: {url} links to {next}, a page already read")));
            }
            if seen.len() > self.settings.max_pages {
                return Err(self.unavailable(format!(
                    "the listing has more than {} pages (`max_pages`); it was not read to its end",
                    self.settings.max_pages
                )));
            }
            let (headers, body) = self
                .get(&next, None, cap)
                .await
                .map_err(|f| self.unavailable(f.message))?
                .ok_or_else(|| self.unavailable(format!("{next} answered 304 to an unconditional request")))?;
            page = (next, headers, body);
        }
        listing.entries.sort_by(|a, b| a.locator.cmp(&b.locator));
        if let Ok(mut current) = self.listing.lock() {
            *current = listing;
        }
        Ok(())
    }
}

/// `Link: <url>; rel="next"`.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .contains("rel=\"next\"")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        format!("cannot connect: {error}")
    } else {
        error.to_string()
    }
}

#[async_trait]
impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "http"
    }

    fn location(&self) -> String {
        self.index.to_string()
    }

    fn loads_in_flight(&self) -> Option<usize> {
        // Each load waits on a round trip, not on this machine: keep many in flight.
        Some(LOADS_IN_FLIGHT)
    }

    fn keeps_state(&self) -> bool {
        true
    }

    fn saved_state(&self) -> Option<String> {
        let saved = self.listing.lock().ok()?.saved(&self.index)?;
        serde_json::to_string(&saved).ok()
    }

    fn restore_state(&self, state: &str) {
        let Some(saved) = serde_json::from_str::<SavedListing>(state)
            .ok()
            .filter(|saved| saved.url == self.index.as_str())
        else {
            tracing::debug!(source = %self.name, "the stored listing is not this source's; reading the registry afresh");
            return;
        };
        if let (Some(listing), Ok(mut current)) = (Listing::restored(saved), self.listing.lock())
            && current.index.is_none()
        {
            *current = listing;
        }
    }

    async fn scan(&self) -> Result<Scan, SourceError> {
        self.fetch_listing().await?;
        let entries = self.listing.lock().map(|l| l.entries.clone()).unwrap_or_default();
        Ok(Scan {
            entries,
            complete: true,
            issues: Vec::new(),
        })
    }

    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        let file_error = |reason: String| SourceError::File {
            file: entry.locator.clone(),
            reason,
        };
        let (url, digest) = self
            .listing
            .lock()
            .ok()
            .and_then(|l| l.items.get(&entry.locator).cloned())
            .ok_or_else(|| file_error("not in the registry's index".into()))?;
        // A bundle holds one task's files as JSON strings: escaping makes it larger than the
        // files, never more than six times (every byte a `\u00XX`).
        let cap = self
            .settings
            .max_response_bytes
            .min(self.read.max_task_bytes.saturating_mul(6).saturating_add(64 * 1024));
        // One bundle, retries included, gets no longer than a whole listing does.
        let deadline = Duration::from_millis(self.settings.scan_timeout_ms);
        let (_, body) = tokio::time::timeout(deadline, self.get(&url, None, cap))
            .await
            .map_err(|_| {
                file_error(format!(
                    "{url} was not read within {}s (`scan_timeout_ms`)",
                    deadline.as_secs_f64()
                ))
            })?
            .map_err(|f| file_error(f.message))?
            .ok_or_else(|| file_error(format!("{url} answered 304 to an unconditional request")))?;
        let document: BundleDocument =
            serde_json::from_slice(&body).map_err(|e| file_error(format!("{url} is not a task bundle: {e}")))?;
        // Hashed in canonical form: `meta.yaml` tasks are served as their authors wrote them.
        let actual = registry_core::digest_of_published(document.files.iter().map(|(p, c)| (p.as_str(), c.as_str())))
            .map_err(|e| file_error(format!("{url}: {e}")))?;
        if actual.to_string() != digest || document.digest != digest {
            return Err(file_error(format!(
                "{url}: the files hash to {actual}, the index announced {digest}"
            )));
        }
        let mut budget = ReadBudget::new(self.read);
        for (path, contents) in &document.files {
            budget.admit(path, contents.len() as u64)?;
        }
        let folder_name = entry.locator.split('@').next().map(str::to_owned);
        let mut files: std::collections::BTreeMap<String, Vec<u8>> =
            document.files.into_iter().map(|(p, c)| (p, c.into_bytes())).collect();
        // The signature travels beside the files; the host judges it by its own policy.
        if let Some(signature) = document.signature {
            files.insert(registry_core::SIGNATURE_FILE.to_owned(), signature.into_bytes());
        }
        Ok(Bundle {
            files,
            folder_name,
            modified: None,
            indexed: None,
        })
    }
}
