//! What a failed request means for the host: a configuration error (bad credentials, a
//! missing bucket, access denied), reported with code `config` and not retried sooner than
//! the source's next poll, or a passing failure (network, timeout, 5xx, 429), retryable,
//! that leaves the scan incomplete.

use registry_plugin_api::{PluginError, with_causes};

/// A setting, a credential or a permission is wrong: trying again will not help.
pub fn config_error(message: impl Into<String>) -> PluginError {
    PluginError::config(message)
}

/// How a failed request is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 401 or 403: the credentials are wrong or lack a permission.
    Denied { code: Option<String> },
    /// 404 on the bucket itself.
    NoBucket,
    /// 404 on an object, or 412 on a conditional GET: the object changed after the
    /// listing.
    Changed,
    /// Another 4xx: the request is wrong for this service (a region mismatch, say).
    Refused { status: u16, code: Option<String> },
    /// A network error, a timeout, a 5xx or a 429: may pass.
    Passing,
}

/// Classifies `error`. object_store names the status of GETs in its error variants; a
/// listing's status is only in its message (`… status code: 403 Forbidden: <body>`), so
/// it is read from there, with the S3 error code of the body.
pub fn classify(error: &object_store::Error) -> Failure {
    use object_store::Error as E;
    match error {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            return Failure::Denied {
                code: s3_code(&with_causes(error)),
            };
        }
        E::Precondition { .. } | E::NotFound { .. } => return Failure::Changed,
        _ => {}
    }
    let text = with_causes(error);
    let code = s3_code(&text);
    match status_in(&text) {
        Some(401 | 403) => Failure::Denied { code },
        Some(404) if code.as_deref() == Some("NoSuchBucket") => Failure::NoBucket,
        Some(404) => Failure::Changed,
        Some(412) => Failure::Changed,
        Some(429) | Some(500..=599) | None => Failure::Passing,
        Some(status) => Failure::Refused { status, code },
    }
}

/// The plugin error for a failed listing of `what` (the bucket and prefix).
pub fn listing_error(error: &object_store::Error, what: &str) -> PluginError {
    let detail = with_causes(error);
    match classify(error) {
        Failure::Denied { code } => config_error(format!(
            "access to {what} was denied ({}): check the credentials and the bucket's policy",
            code.as_deref().unwrap_or("403")
        )),
        Failure::NoBucket => config_error(format!("{what}: the bucket does not exist")),
        Failure::Refused { status, code } => config_error(format!(
            "{what}: the service refused the listing ({status} {}): {detail}",
            code.as_deref().unwrap_or("")
        )),
        Failure::Changed | Failure::Passing => {
            PluginError::new("unavailable", format!("cannot list {what}: {detail}")).retryable()
        }
    }
}

/// The plugin error for a failed GET of `key` during a load.
pub fn object_error(error: &object_store::Error, key: &str) -> PluginError {
    match classify(error) {
        Failure::Changed => PluginError::new(
            "changed",
            format!("`{key}` changed or went away after it was listed; the next scan sees the new version"),
        )
        .retryable(),
        Failure::Denied { code } => config_error(format!(
            "reading `{key}` was denied ({})",
            code.as_deref().unwrap_or("403")
        )),
        Failure::NoBucket => config_error(format!("reading `{key}`: the bucket does not exist")),
        Failure::Refused { status, .. } => {
            PluginError::new("refused", format!("reading `{key}`: {status}: {}", with_causes(error)))
        }
        Failure::Passing => {
            PluginError::new("unavailable", format!("cannot read `{key}`: {}", with_causes(error))).retryable()
        }
    }
}

/// The HTTP status in object_store's `status code: 403 Forbidden` wording.
fn status_in(text: &str) -> Option<u16> {
    let (_, rest) = text.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
}

/// The `<Code>` of an S3 error body.
fn s3_code(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("<Code>")?;
    let (code, _) = rest.split_once("</Code>")?;
    Some(code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_and_the_s3_code_are_read_from_a_listing_error_message() {
        let text = "Generic S3 error: Error performing GET http://127.0.0.1:9/b?list-type=2 in 3ms - \
                    Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
                    <Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>";
        assert_eq!(status_in(text), Some(403));
        assert_eq!(s3_code(text).as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(status_in("error sending request: connection refused"), None);
    }
}
