//! The requests the source makes: a paginated listing of the prefix and conditional
//! GETs, run on the plugin's own tokio runtime (the plugin interface is synchronous and
//! the host's runtime is not this library's), stopped early when the host cancels.

use crate::failure::{listing_error, object_error};
use crate::layout::Listed;
use futures::StreamExt as _;
use object_store::aws::AmazonS3;
use object_store::list::{PaginatedListOptions, PaginatedListStore as _};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore as _};
use registry_plugin_api::{Host, PluginError, with_causes};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

/// How many GETs one load or one scan keeps in flight.
pub const GETS_IN_FLIGHT: usize = 16;

/// The plugin's runtime, shared by its sources, started on first use.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-source")
            .enable_all()
            .build()
            .expect("a tokio runtime for the S3 plugin")
    })
}

/// Runs `work` to its end, or until the host cancels the call.
pub fn run<T>(host: &Host, work: impl Future<Output = Result<T, PluginError>>) -> Result<T, PluginError> {
    runtime().block_on(async {
        tokio::select! {
            result = work => result,
            () = cancelled(host) => Err(host.cancelled_error()),
        }
    })
}

async fn cancelled(host: &Host) {
    while !host.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One bucket and prefix.
pub struct Bucket {
    pub store: AmazonS3,
    pub name: String,
    /// Without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
    pub page_size: usize,
}

impl Bucket {
    /// `s3://bucket/prefix`, for messages.
    pub fn shown(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.name)
        } else {
            format!("s3://{}/{}", self.name, self.prefix)
        }
    }

    /// The full key of a key relative to the prefix.
    pub fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// Every object under the prefix, following the listing's pages, keys relative to it.
    pub async fn list(&self) -> Result<Vec<Listed>, PluginError> {
        let prefix = (!self.prefix.is_empty()).then(|| format!("{}/", self.prefix));
        let mut objects = Vec::new();
        let mut page_token = None;
        loop {
            let options = PaginatedListOptions {
                max_keys: Some(self.page_size),
                page_token: page_token.take(),
                ..PaginatedListOptions::default()
            };
            let page = self
                .store
                .list_paginated(prefix.as_deref(), options)
                .await
                .map_err(|e| listing_error(&e, &self.shown()))?;
            for meta in page.result.objects {
                let key: &str = meta.location.as_ref();
                let relative = match &prefix {
                    Some(prefix) => key.strip_prefix(prefix.as_str()).unwrap_or(key),
                    None => key,
                };
                if relative.is_empty() {
                    continue;
                }
                objects.push(Listed {
                    key: relative.to_owned(),
                    size: meta.size,
                    etag: meta.e_tag,
                    modified: meta.last_modified.into(),
                });
            }
            match page.page_token {
                Some(token) => page_token = Some(token),
                None => return Ok(objects),
            }
        }
    }

    /// The object `listed` exactly as listed: the GET carries `If-Match` with the listed
    /// ETag, so a newer version fails it (retryable) instead of mixing in. At most `cap`
    /// bytes are read, whatever the response says.
    pub async fn get(&self, listed: &Listed, cap: u64) -> Result<Vec<u8>, PluginError> {
        let key = self.key(&listed.key);
        // The key as listed (object_store parsed it then): no re-encoding.
        let location = ObjectPath::parse(&key).map_err(|e| PluginError::new("bad_key", format!("`{key}`: {e}")))?;
        let options = GetOptions {
            if_match: listed.etag.clone(),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&location, options)
            .await
            .map_err(|e| object_error(&e, &key))?;
        let mut bytes = Vec::with_capacity(listed.size.min(cap) as usize);
        let mut body = result.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                PluginError::new("unavailable", format!("reading `{key}` broke off: {}", with_causes(&e))).retryable()
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > cap {
                return Err(PluginError::too_large(&listed.key, bytes.len() as u64, cap));
            }
        }
        if bytes.len() as u64 != listed.size {
            return Err(PluginError::new(
                "changed",
                format!(
                    "`{key}` was listed with {} bytes and read with {}: it changed; the next scan sees the new version",
                    listed.size,
                    bytes.len()
                ),
            )
            .retryable());
        }
        Ok(bytes)
    }
}
