//! `taskreg serve`: the stored catalogue over HTTP, so that registries can chain.
//!
//! Routes (see `docs/http-protocol.md`, and `/v1/openapi.json` built from [`ROUTES`]):
//! - `GET /v1/tasks?cursor=…&limit=…` — the index, every version ever seen, paginated with a
//!   cursor and a `Link: <…>; rel="next"` header;
//! - `GET /v1/tasks/{name}` — one task's versions; with `?req=^1.2`, the bundle of the newest
//!   available version that matches;
//! - `GET /v1/tasks/{name}/{version}` — the bundle: every file, canonical, so the digest
//!   can be checked; `404` for a version never seen, `410` for one no longer available;
//! - `GET /v1/events` — server-sent events of every change (with `serve --watch`);
//! - `GET /` — the service document: where the index and the events stream are, so that a
//!   client needs only the address `serve` printed;
//! - `GET /healthz` (the process is up), `GET /readyz` (the catalogue answers and has every
//!   migration this taskreg knows), `GET /metrics` (Prometheus text), `GET /v1/openapi.json`.
//!
//! Every `/v1` response carries a strong `ETag` and answers `If-None-Match` with `304`;
//! `gzip` when asked. With a token, `/v1` and `/metrics` require
//! `Authorization: Bearer <token>` (the scheme in any case, the token compared in constant
//! time); `/metrics` is public only when configured so.
//!
//! Requests read the catalogue through a pool of read-only connections
//! ([`ServeOptions::pool_size`]), in parallel. Connections are bounded: at most [`ServeOptions::max_connections`] at once (further
//! ones wait in the listen backlog, unaccepted, so the process never runs out of file
//! descriptors), and a client has [`ServeOptions::header_read_timeout`] to send a
//! request's headers, idle keep-alive connections included. `/metrics` counts the
//! catalogue with a few `COUNT` queries, at most once per [`METRICS_TTL`].

use crate::store::{PooledStore, StorePool};
use axum::Router;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use registry_core::protocol::{BundleDocument, IndexItem, IndexPage, TaskVersions, VersionItem};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use tokio::sync::Mutex;

/// Every route, as `(path, summary)`: the router and the OpenAPI document are both built
/// from this list, so they cannot drift apart.
pub const ROUTES: &[(&str, &str)] = &[
    (
        "/",
        "The service document: the index's and the events stream's addresses (`index`, `events`).",
    ),
    (
        "/v1/tasks",
        "The index: every version ever seen, paginated (`cursor`, `limit`).",
    ),
    (
        "/v1/tasks/{name}",
        "One task's versions; with `req` (a semver requirement such as `^1.2`), the bundle of the newest available match.",
    ),
    (
        "/v1/tasks/{name}/{version}",
        "A version's bundle: every file, canonical.",
    ),
    ("/v1/openapi.json", "This document."),
    (
        "/v1/events",
        "Server-sent events: tasks added, changed, missing, revived; problems raised, cleared.",
    ),
    ("/healthz", "Liveness: 200 while the process runs."),
    (
        "/readyz",
        "Readiness: 200 when the catalogue answers and has every migration this server knows; 503 otherwise.",
    ),
    ("/metrics", "Prometheus metrics: tasks, syncs, problems, requests."),
];

const DEFAULT_PAGE: usize = 500;
const MAX_PAGE: usize = 1000;

/// How long `/metrics` reuses its catalogue figures: scrapes never cost more than a few
/// `COUNT`s every so often, however many scrapers there are.
pub const METRICS_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Catalogue connections of a server unless configured: enough for both cores and the
/// requests waiting on the database meanwhile.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// How `serve` answers: who may read, and how many connections it holds.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Require `Authorization: Bearer <token>` on `/v1` (and `/metrics` unless public).
    pub token: Option<String>,
    /// Serve `/metrics` without the token.
    pub metrics_public: bool,
    /// Connections served at once.
    pub max_connections: usize,
    /// The time a client has to send a request's headers.
    pub header_read_timeout: std::time::Duration,
    /// Catalogue connections requests read through at once.
    pub pool_size: usize,
    /// How often the catalogue's generation is read to relay, at `/v1/events`, the runs
    /// other processes applied (other hosts, a `watch` beside this server).
    pub event_poll_interval: std::time::Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            token: None,
            metrics_public: false,
            max_connections: 1024,
            header_read_timeout: std::time::Duration::from_secs(10),
            pool_size: DEFAULT_POOL_SIZE,
            event_poll_interval: std::time::Duration::from_millis(500),
        }
    }
}

/// What the server's handlers share: its catalogue connections, token and counters.
pub struct ServeState {
    /// Read-only connections, one per request in flight.
    pool: StorePool,
    /// The token's SHA-256, compared in constant time with the presented token's.
    token: Option<[u8; 32]>,
    metrics_public: bool,
    /// The catalogue's figures for `/metrics` and when they were counted.
    counted: Mutex<Option<(std::time::Instant, crate::store::CatalogueCounts)>>,
    /// What `/v1/events` relays: every run the registry applies.
    pub events: tokio::sync::broadcast::Sender<crate::events::RegistryEvent>,
    /// The registry's cache of checked tasks, for `/metrics` (set when the serving
    /// registry syncs too).
    pub check_cache: std::sync::OnceLock<Arc<crate::cache::CheckCache>>,
    /// The serving registry's isolated plugin libraries, for `/metrics` (filled when its
    /// sources are built).
    pub plugin_children: std::sync::OnceLock<Arc<std::sync::OnceLock<Vec<crate::plugins::ChildWatch>>>>,
    /// Requests served, by route and status.
    requests: StdMutex<BTreeMap<(String, u16), u64>>,
    /// This process's identity: the runs it applied itself reach `events` directly, so
    /// the relay of the catalogue's event log leaves them out.
    pub own_process: std::sync::OnceLock<String>,
    /// The web catalogue's rows at the latest generation it was asked for.
    pub(crate) catalogue_listing: crate::ui::ListingCache,
}

impl ServeState {
    /// The state of a server answering from `pool` and relaying `events` at `/v1/events`.
    pub fn new(
        pool: StorePool,
        options: &ServeOptions,
        events: tokio::sync::broadcast::Sender<crate::events::RegistryEvent>,
    ) -> Arc<Self> {
        Arc::new(ServeState {
            pool,
            token: options.token.as_deref().map(|t| Sha256::digest(t.as_bytes()).into()),
            metrics_public: options.metrics_public,
            counted: Mutex::new(None),
            events,
            check_cache: std::sync::OnceLock::new(),
            plugin_children: std::sync::OnceLock::new(),
            requests: StdMutex::new(BTreeMap::new()),
            own_process: std::sync::OnceLock::new(),
            catalogue_listing: Default::default(),
        })
    }

    /// A connection of the pool; `503` when none comes free in time or the catalogue
    /// cannot be reached.
    pub(crate) async fn store(&self) -> Result<PooledStore, ApiError> {
        self.pool.get().await.map_err(|e| {
            tracing::error!("no catalogue connection for a request: {e}");
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the catalogue cannot be reached now".into(),
            )
        })
    }
}

/// The application, for `serve` and for tests.
pub fn router(state: Arc<ServeState>) -> Router {
    let v1 = Router::new()
        .route(ROUTES[1].0, get(index))
        .route(ROUTES[2].0, get(versions))
        .route(ROUTES[3].0, get(bundle))
        .route(ROUTES[4].0, get(openapi))
        .route(ROUTES[5].0, get(events))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let mut metrics = Router::new().route(ROUTES[8].0, get(metrics));
    if !state.metrics_public {
        metrics = metrics.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    }
    Router::new()
        .route(ROUTES[0].0, get(root))
        .merge(v1)
        .merge(crate::ui::router(state.clone()))
        .merge(metrics)
        .route(ROUTES[6].0, get(healthz))
        .route(ROUTES[7].0, get(readyz))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets the requests in flight finish.
///
/// HTTP/1.1 only (what the registry protocol and its clients use): a connection is
/// accepted only when one of `max_connections` places is free, and each must send its
/// request headers within `header_read_timeout`, also between keep-alive requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServeState>,
    options: &ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let service = hyper_util::service::TowerToHyperService::new(router(state.clone()));
    let places = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let relay = tokio::spawn(relay_runs_of_others(state.clone(), options.event_poll_interval));
    tokio::pin!(shutdown);
    loop {
        // A place first, then the connection: past the cap, clients wait in the backlog.
        let place = tokio::select! {
            () = &mut shutdown => break,
            place = places.clone().acquire_owned() => place.expect("the semaphore is never closed"),
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors or a connection reset before accept: wait, go on.
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(place);
        });
    }
    relay.abort();
    // Requests in flight finish; long-lived ones (event streams) get a few seconds.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// Sends to `/v1/events` what the runs of other processes changed: every `interval`, the
/// catalogue's generation is read (one small query), and when it moved, the event log of
/// the runs since (`catalogue_events`). A replica that wrote nothing itself hears every
/// edit synced on any host; runs this process applied are already sent, directly.
async fn relay_runs_of_others(state: Arc<ServeState>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Where the relay starts: what is in the catalogue now was written before it.
    let mut relayed: Option<i64> = None;
    loop {
        ticks.tick().await;
        let Ok(mut store) = state.pool.get().await else {
            continue;
        };
        let Ok(generation) = store.generation().await else {
            continue;
        };
        let Some(last) = relayed else {
            relayed = Some(generation);
            continue;
        };
        if generation == last {
            continue;
        }
        let written = match store.events_after(last).await {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!("cannot read the catalogue's events to relay them: {e}");
                continue;
            }
        };
        let own = state.own_process.get();
        let mut newest = generation;
        for run in written {
            newest = newest.max(run.generation);
            if run.writer.is_some() && run.writer.as_ref() == own {
                continue;
            }
            for event in run.events {
                let _ = state.events.send(event);
            }
        }
        relayed = Some(newest);
    }
}

#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!("catalogue error while serving: {e}");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the catalogue could not be read".into(),
        )
    }
}

/// Whether the request's `If-None-Match` names `etag` (or `*`).
fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// A JSON document with a strong ETag; `304` when the client already has it.
pub(crate) fn conditional(request: &HeaderMap, etag: String, body: Vec<u8>) -> Response {
    let matches = not_modified(request, &etag);
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), cache]).into_response();
    }
    let json = (header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (StatusCode::OK, [(header::ETAG, etag), cache, json], body).into_response()
}

pub(crate) fn body_etag(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(body)[..16]))
}

fn href(name: &str, version: &str) -> String {
    format!("/v1/tasks/{}/{}", encode(name), encode(version))
}

/// Percent-encodes what a name or version may hold that a path segment may not.
fn encode(segment: &str) -> String {
    segment.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        out
    })
}

#[derive(Deserialize)]
struct Page {
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn index(
    State(state): State<Arc<ServeState>>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let after = page.cursor.as_deref().and_then(|c| c.split_once('@'));
    let mut store = state.store().await?;
    // The generation first: a write after it changes the next request's ETag, so a client
    // never keeps a page under an ETag older than its content.
    let generation = store.generation().await?;
    // Every page's ETag names the catalogue's generation: a 304 on the first page means
    // nothing changed on any page, so a client may keep its whole listing.
    let mut key = Sha256::new();
    key.update(format!("{}\0{limit}", page.cursor.as_deref().unwrap_or_default()));
    let etag = format!("\"g{generation}-{}\"", hex::encode(&key.finalize()[..8]));
    if not_modified(&headers, &etag) {
        return Ok(conditional(&headers, etag, Vec::new()));
    }
    let (rows, more) = store.index_page(after, limit).await?;
    drop(store);
    let items: Vec<IndexItem> = rows
        .iter()
        .map(|v| IndexItem {
            name: v.name.clone(),
            version: v.version.clone(),
            digest: v.digest.clone(),
            available: v.available,
            href: href(&v.name, &v.version),
            signed_by: v.signer_key_id.clone(),
            signature_verified_at: v.signature_verified_at,
        })
        .collect();
    let next = (more && !rows.is_empty()).then(|| {
        let last = &rows[rows.len() - 1];
        format!(
            "/v1/tasks?cursor={}&limit={limit}",
            encode(&format!("{}@{}", last.name, last.version))
        )
    });
    let body = serde_json::to_vec(&IndexPage {
        items,
        next: next.clone(),
    })
    .unwrap_or_default();
    let mut response = conditional(&headers, etag, body);
    if let Some(next) = next
        && let Ok(link) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// `?req=` on a task's route: a semver requirement as Cargo writes them.
#[derive(Deserialize)]
struct Requirement {
    req: Option<String>,
}

async fn versions(
    State(state): State<Arc<ServeState>>,
    Path(name): Path<String>,
    Query(query): Query<Requirement>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(requirement) = query.req {
        return newest_match(&state, &name, &requirement, &headers).await;
    }
    let history = state.store().await?.history(&name).await?;
    if history.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no task `{name}`")));
    }
    let versions: Vec<VersionItem> = history
        .iter()
        .map(|v| VersionItem {
            version: v.version.clone(),
            digest: v.digest.clone(),
            available: v.available,
            href: href(&name, &v.version),
            signed_by: v.signed_by.clone(),
            signature_verified_at: v.signature_verified_at,
        })
        .collect();
    let body = serde_json::to_vec(&TaskVersions { name, versions }).unwrap_or_default();
    Ok(conditional(&headers, body_etag(&body), body))
}

/// The bundle of the newest available version that `requirement` accepts, with its own
/// route in `Content-Location`: `400` for a requirement semver refuses, `404` when no
/// available version matches.
async fn newest_match(
    state: &ServeState,
    name: &str,
    requirement: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let parsed = semver::VersionReq::parse(requirement.trim()).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{requirement}` is not a version requirement: {e}"),
        )
    })?;
    let found = state.store().await?.resolve(name, &parsed).await?;
    let Some((task, _)) = found else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no available version of task `{name}` matches `{requirement}`"),
        ));
    };
    let location = href(&task.name, &task.version);
    let mut response = bundle_response(&task, headers)?;
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::CONTENT_LOCATION, location);
    }
    Ok(response)
}

async fn bundle(
    State(state): State<Arc<ServeState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let found = state.store().await?.show(&name, Some(&version)).await?;
    let Some((task, _)) = found else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no task `{name}@{version}`")));
    };
    if !task.available {
        return Err(ApiError(
            StatusCode::GONE,
            format!("`{name}@{version}` is no longer available"),
        ));
    }
    bundle_response(&task, &headers)
}

/// A version's bundle: every file, canonical, named by its digest.
fn bundle_response(task: &crate::store::StoredTask, headers: &HeaderMap) -> Result<Response, ApiError> {
    let files = task
        .files()
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let document = BundleDocument {
        name: task.name.clone(),
        version: task.version.clone(),
        digest: task.digest.clone(),
        files,
        signature: task.signature.text.clone(),
    };
    let body = serde_json::to_vec(&document).unwrap_or_default();
    // The content and its signature make the body: a version signed after it was first
    // served gets a new ETag.
    let etag = match &task.signature.text {
        None => format!("\"{}\"", task.digest),
        Some(_) => body_etag(&body),
    };
    Ok(conditional(headers, etag, body))
}

async fn openapi(headers: HeaderMap) -> Response {
    let body = serde_json::to_vec_pretty(&openapi_document()).unwrap_or_default();
    conditional(&headers, body_etag(&body), body)
}

/// The query parameters a route takes besides its path's.
fn query_parameters(path: &str) -> Vec<Value> {
    let text = |name: &str, description: &str| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } });
    match path {
        "/v1/tasks" => vec![
            text("cursor", "Where the previous page ended (from its `next`)."),
            json!({ "name": "limit", "in": "query", "required": false, "description": "Items per page, 1 to 1000 (default 500).", "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }),
        ],
        "/v1/tasks/{name}" => vec![text(
            "req",
            "A semver requirement as Cargo writes them (`^1.2`, `~1.2.3`, `>=1, <3`): answer the bundle of the newest available version that matches (`Content-Location` names it), 404 when none does.",
        )],
        _ => Vec::new(),
    }
}

/// The OpenAPI 3.1 description of [`ROUTES`].
pub fn openapi_document() -> Value {
    let paths: serde_json::Map<String, Value> = ROUTES
        .iter()
        .map(|(path, summary)| {
            let parameters: Vec<Value> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
                .chain(query_parameters(path))
                .collect();
            let responses = json!({
                "200": { "description": "OK" },
                "304": { "description": "Not modified (If-None-Match)" },
                "401": { "description": "Missing or wrong bearer token" },
                "400": { "description": "A `req` that is not a semver requirement" },
                "404": { "description": "Never seen, or no available version matches `req`" },
                "410": { "description": "No longer available" },
            });
            let operation = json!({ "summary": summary, "parameters": parameters, "responses": responses });
            (path.to_string(), json!({ "get": operation }))
        })
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": { "title": "taskreg registry", "version": env!("CARGO_PKG_VERSION") },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "paths": paths,
    })
}

async fn events(State(state): State<Arc<ServeState>>) -> impl IntoResponse {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let receiver = state.events.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    let sse = Event::default()
                        .event(event.kind())
                        .json_data(&event)
                        .unwrap_or_default();
                    return Some((Ok::<_, std::convert::Infallible>(sse), receiver));
                }
                // A slow client misses events rather than holding the others back.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("an event client fell {n} events behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `/`: browsers (`Accept: text/html`) go to the web pages, API clients get the service
/// document (with the token, when one is required).
async fn root(State(state): State<Arc<ServeState>>, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        return axum::response::Redirect::to("/ui/").into_response();
    }
    if !state.admits(&headers) {
        return unauthorized();
    }
    service(headers).await
}

/// The service document at `/`: what a client given only the server's address needs.
async fn service(headers: HeaderMap) -> Response {
    let document = registry_core::protocol::ServiceDocument {
        protocol: registry_core::protocol::PROTOCOL_VERSION.to_owned(),
        index: ROUTES[1].0.to_owned(),
        events: Some(ROUTES[5].0.to_owned()),
    };
    let body = serde_json::to_vec(&document).unwrap_or_default();
    conditional(&headers, body_etag(&body), body)
}

/// Liveness: the process is up and answers. It reads nothing, so a slow or unreachable
/// database never gets a live server restarted.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the catalogue answers, and has every migration this server knows (a server
/// newer than its catalogue waits for a writer to migrate it).
async fn readyz(State(state): State<Arc<ServeState>>) -> Response {
    let unready = |reason: String| (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response();
    let mut store = match state.pool.get().await {
        Ok(store) => store,
        Err(e) => return unready(format!("the catalogue cannot be reached ({e})")),
    };
    match store.pending_migrations().await {
        Ok(0) => "ready\n".into_response(),
        Ok(pending) => unready(format!("the catalogue lacks {pending} migration(s)")),
        Err(e) => unready(e.to_string()),
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn metrics(State(state): State<Arc<ServeState>>) -> Result<Response, ApiError> {
    let counts = {
        let mut counted = state.counted.lock().await;
        match *counted {
            Some((at, counts)) if at.elapsed() < METRICS_TTL => counts,
            _ => {
                let counts = state.store().await?.catalogue_counts().await?;
                *counted = Some((std::time::Instant::now(), counts));
                counts
            }
        }
    };
    let mut out = String::new();
    out.push_str("# HELP taskreg_task_versions Task versions in the catalogue.\n# TYPE taskreg_task_versions gauge\n");
    out.push_str(&format!(
        "taskreg_task_versions{{available=\"true\"}} {}\n",
        counts.available_versions
    ));
    out.push_str(&format!(
        "taskreg_task_versions{{available=\"false\"}} {}\n",
        counts.unavailable_versions
    ));
    out.push_str("# HELP taskreg_problems Current problems.\n# TYPE taskreg_problems gauge\n");
    out.push_str(&format!(
        "taskreg_problems{{severity=\"error\"}} {}\n",
        counts.error_problems
    ));
    out.push_str(&format!(
        "taskreg_problems{{severity=\"warning\"}} {}\n",
        counts.warning_problems
    ));
    out.push_str("# HELP taskreg_sync_runs_total Sync runs that changed the catalogue.\n# TYPE taskreg_sync_runs_total counter\n");
    out.push_str(&format!("taskreg_sync_runs_total {}\n", counts.sync_runs));
    if let Some(cache) = state.check_cache.get() {
        out.push_str("# HELP taskreg_check_cache_hits_total Loaded tasks whose check came from the cache.\n");
        out.push_str("# TYPE taskreg_check_cache_hits_total counter\n");
        out.push_str(&format!("taskreg_check_cache_hits_total {}\n", cache.hits()));
        out.push_str("# HELP taskreg_check_cache_misses_total Loaded tasks checked afresh.\n");
        out.push_str("# TYPE taskreg_check_cache_misses_total counter\n");
        out.push_str(&format!("taskreg_check_cache_misses_total {}\n", cache.misses()));
    }
    if let Some(children) = state
        .plugin_children
        .get()
        .and_then(|c| c.get())
        .filter(|c| !c.is_empty())
    {
        out.push_str("# HELP taskreg_plugin_child_up Whether an isolated plugin library's child process runs.\n");
        out.push_str("# TYPE taskreg_plugin_child_up gauge\n");
        let statuses: Vec<(String, crate::plugins::ChildStatus)> = children
            .iter()
            .map(|c| (label_value(&c.library.display().to_string()), c.status()))
            .collect();
        for (library, status) in &statuses {
            let up = u8::from(status.pid.is_some());
            out.push_str(&format!("taskreg_plugin_child_up{{library=\"{library}\"}} {up}\n"));
        }
        out.push_str("# HELP taskreg_plugin_child_restarts_total Child processes started after the first, per isolated plugin library.\n");
        out.push_str("# TYPE taskreg_plugin_child_restarts_total counter\n");
        for (library, status) in &statuses {
            out.push_str(&format!(
                "taskreg_plugin_child_restarts_total{{library=\"{library}\"}} {}\n",
                status.restarts
            ));
        }
    }
    out.push_str("# HELP taskreg_http_requests_total Requests served.\n# TYPE taskreg_http_requests_total counter\n");
    for ((route, status), n) in state.requests.lock().map(|r| r.clone()).unwrap_or_default() {
        out.push_str(&format!(
            "taskreg_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// The token of `Authorization: Bearer <token>`, the scheme in any case (RFC 9110 §11.1).
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    scheme.eq_ignore_ascii_case(b"bearer").then(|| rest.trim_ascii())
}

/// The cookie the web pages' login form sets: the token, for browsers.
pub(crate) const TOKEN_COOKIE: &str = "taskreg_token";

/// The token of the [`TOKEN_COOKIE`] cookie.
fn cookie_token(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b';'))
        .map(<[u8]>::trim_ascii)
        .find_map(|pair| pair.strip_prefix(TOKEN_COOKIE.as_bytes())?.strip_prefix(b"="))
}

impl ServeState {
    /// Whether the request may read: no token is required, or it presents the token (as a
    /// bearer token, or in the login cookie of the web pages).
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else { return true };
        use subtle::ConstantTimeEq as _;
        // Both sides hashed: equal lengths, and the time taken says nothing of the token.
        let matches = |given: &[u8]| bool::from(Sha256::digest(given).as_slice().ct_eq(expected.as_slice()));
        bearer_token(headers).is_some_and(matches) || cookie_token(headers).is_some_and(matches)
    }

    /// Whether a token is required at all.
    pub(crate) fn requires_token(&self) -> bool {
        self.token.is_some()
    }
}

async fn require_token(State(state): State<Arc<ServeState>>, request: Request, next: Next) -> Response {
    if !state.admits(request.headers()) {
        return unauthorized();
    }
    next.run(request).await
}

/// `401` with `WWW-Authenticate: Bearer`.
fn unauthorized() -> Response {
    let mut response = ApiError(StatusCode::UNAUTHORIZED, "a bearer token is required".into()).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn count_requests(State(state): State<Arc<ServeState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    if let Ok(mut requests) = state.requests.lock() {
        *requests.entry((route, response.status().as_u16())).or_default() += 1;
    }
    response
}
