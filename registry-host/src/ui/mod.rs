//! The web pages of `taskreg serve` (`/ui/`): what operators look at instead of reading
//! JSON. Server-rendered HTML (maud: checked at compile time, every value escaped unless
//! marked otherwise), readable without JavaScript, one stylesheet embedded in the binary,
//! light and dark following the system. Read-only: the pages only read the catalogue.
//!
//! The same token protects them as the API: a browser signs in once with the login form,
//! which keeps the token in an `HttpOnly` cookie; a proxy may send the bearer header.

mod catalogue;
mod highlight;
mod problems;
mod sources;
mod task;

pub(crate) use catalogue::ListingCache;

use crate::serve::{ApiError, ServeState, TOKEN_COOKIE};
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use std::sync::{Arc, LazyLock};

/// The stylesheet, embedded: light and dark themes by `prefers-color-scheme`.
const STYLE: &str = include_str!("style.css");

/// The live-update script, embedded: refreshes the page's content on catalogue events.
const LIVE: &str = include_str!("live.js");

/// The pages' routes, each behind the token when one is required.
pub(crate) fn router(state: Arc<ServeState>) -> Router<Arc<ServeState>> {
    let pages = Router::new()
        .route("/ui/", get(catalogue::list))
        .route("/ui/tasks/{name}", get(task::newest))
        .route("/ui/tasks/{name}/{version}", get(task::version))
        .route("/ui/problems", get(problems::list))
        .route("/ui/sources", get(sources::list))
        .route_layer(middleware::from_fn_with_state(state, signed_in));
    Router::new()
        .merge(pages)
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/style.css", get(style))
        .route("/ui/live.js", get(live))
}

/// A browser without the token is sent to the login form.
async fn signed_in(State(state): State<Arc<ServeState>>, request: Request, next: Next) -> Response {
    if state.admits(request.headers()) {
        return next.run(request).await;
    }
    Redirect::to("/ui/login").into_response()
}

async fn login_form(State(state): State<Arc<ServeState>>) -> Html<String> {
    login_page(&state, None)
}

fn login_page(state: &ServeState, error: Option<&str>) -> Html<String> {
    page(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if !state.requires_token() {
                p { "This registry needs no token: " a href="/ui/" { "open the catalogue" } "." }
            } @else {
                @if let Some(error) = error { p.error role="alert" { (error) } }
                form method="post" action="/ui/login" {
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
                p.hint { "The token of " code { "taskreg serve --token" } " (or " code { "[serve] token" } ")." }
            }
        },
    )
}

/// The login form's post: a right token is kept in a cookie for the pages.
async fn login(State(state): State<Arc<ServeState>>, body: String) -> Response {
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(header::AUTHORIZATION, bearer);
    }
    if !state.requires_token() || !state.admits(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            login_page(&state, Some("That is not the token.")),
        )
            .into_response();
    }
    // The token is a header value already (checked above), so the cookie is one too.
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to("/ui/").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The stylesheet's content version, which its URL carries so that it may be cached.
static STYLE_VERSION: LazyLock<String> = LazyLock::new(|| version_of(STYLE));

/// The live-update script's content version.
static LIVE_VERSION: LazyLock<String> = LazyLock::new(|| version_of(LIVE));

/// The stylesheet's URL.
static STYLE_HREF: LazyLock<String> = LazyLock::new(|| format!("/ui/style.css?v={}", *STYLE_VERSION));

/// The live-update script's URL.
static LIVE_HREF: LazyLock<String> = LazyLock::new(|| format!("/ui/live.js?v={}", *LIVE_VERSION));

/// How long a browser may keep an asset fetched by its versioned URL: a changed file gets
/// a new URL, so the old one never goes stale.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// An asset request's query: the version the page asked for.
#[derive(Debug, Default, serde::Deserialize)]
struct AssetQuery {
    v: Option<String>,
}

/// The first 16 hex digits of `text`'s `ETag`: the version in an asset's URL.
fn version_of(text: &str) -> String {
    crate::serve::body_etag(text.as_bytes())
        .trim_matches('"')
        .chars()
        .take(16)
        .collect()
}

/// Forgets the token's cookie and goes back to the login form.
async fn logout() -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    let expired = format!("{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(cookie) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn style(headers: HeaderMap, Query(query): Query<AssetQuery>) -> Response {
    asset(&headers, &query, STYLE, &STYLE_VERSION, "text/css; charset=utf-8")
}

async fn live(headers: HeaderMap, Query(query): Query<AssetQuery>) -> Response {
    asset(&headers, &query, LIVE, &LIVE_VERSION, "text/javascript; charset=utf-8")
}

/// An embedded file with its content's `ETag`; cached for a year when asked for by its
/// current version, revalidated otherwise.
fn asset(
    headers: &HeaderMap,
    query: &AssetQuery,
    text: &'static str,
    version: &str,
    content_type: &'static str,
) -> Response {
    let mut response = crate::serve::conditional(headers, crate::serve::body_etag(text.as_bytes()), text.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if query.v.as_deref() == Some(version) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    }
    response
}

/// What the shell around a page offers besides the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shell {
    /// The server asks for a token: a button to sign out (forget the cookie).
    SignOut,
    /// No token (or no page behind one, as the login form and error pages).
    Plain,
}

impl Shell {
    fn of(state: &ServeState) -> Shell {
        if state.requires_token() {
            Shell::SignOut
        } else {
            Shell::Plain
        }
    }
}

/// A whole page: the shell (navigation, stylesheet) around `body`.
fn page(title: &str, body: Markup) -> Html<String> {
    page_in(Shell::Plain, title, body)
}

/// A whole page in `shell`.
fn page_in(shell: Shell, title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · taskreg" }
                link rel="stylesheet" href=(*STYLE_HREF);
                script src=(*LIVE_HREF) defer {}
            }
            body {
                a.skip href="#content" { "Skip to the content" }
                header {
                    nav aria-label="Main" {
                        a.brand href="/ui/" { "taskreg" }
                        a href="/ui/" { "Catalogue" }
                        a href="/ui/problems" { "Problems" }
                        a href="/ui/sources" { "Sources" }
                    }
                    @if shell == Shell::SignOut {
                        form.sign-out method="post" action="/ui/logout" { button type="submit" { "Sign out" } }
                    }
                }
                main #content { (body) }
                footer { p.muted #live aria-live="polite" {} }
            }
        }
    };
    Html(markup.into_string())
}

/// A page or an error page: what the handlers answer.
type PageResult = Result<Html<String>, PageError>;

/// An error shown as a page (the API's errors are JSON).
struct PageError(StatusCode, String);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e.0, e.1)
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        PageError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.0.canonical_reason().unwrap_or("Error");
        let body = page(
            title,
            html! { h1 { (title) } p { (self.1) } p { a href="/ui/" { "Back to the catalogue" } } },
        );
        (self.0, body).into_response()
    }
}

/// `/ui/tasks/NAME[/VERSION]`, each segment percent-encoded.
fn task_href(name: &str, version: Option<&str>) -> String {
    let encode = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    match version {
        Some(version) => format!("/ui/tasks/{}/{}", encode(name), encode(version)),
        None => format!("/ui/tasks/{}", encode(name)),
    }
}

/// `n` `word`s, in the singular for one (`1 error`, `2 errors`).
fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
fn time(millis: i64) -> String {
    jiff::Timestamp::from_millisecond(millis).map_or_else(
        |_| millis.to_string(),
        |t| {
            t.round(jiff::Unit::Second)
                .map_or_else(|_| t.to_string(), |t| t.to_string())
        },
    )
}
