//! The settings of an `s3` source and the client they make: where the bucket is, how to
//! reach it, and whose credentials sign the requests. Credentials come from the settings,
//! from `*_file` settings, or from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, and nowhere else unless `instance_metadata = true`.

use crate::failure::config_error;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use registry_plugin_api::PluginError;
use registry_plugin_api::archive::ArchiveLimits;
use schemars::JsonSchema;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `[[sources]]` settings of `type = "s3"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The bucket's name.
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// The key prefix the tasks lie under (`team/tasks`); default: the whole bucket.
    #[serde(default)]
    pub prefix: String,
    /// An S3-compatible service (`https://minio.example.com:9000`); default: AWS.
    pub endpoint: Option<String>,
    /// Default `us-east-1`.
    pub region: Option<String>,
    /// `https://ENDPOINT/BUCKET/KEY` instead of `https://BUCKET.ENDPOINT/KEY`; default: on
    /// when `endpoint` is set.
    pub path_style: Option<bool>,
    /// Allows an `http://` endpoint (refused for any other).
    #[serde(default)]
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Files holding the credentials (trimmed), relative to the config file's folder.
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key_file: Option<PathBuf>,
    pub session_token_file: Option<PathBuf>,
    /// A public bucket: requests are not signed.
    #[serde(default)]
    pub anonymous: bool,
    /// With no credentials set, ask the instance metadata service (EC2, ECS) for them.
    #[serde(default)]
    pub instance_metadata: bool,
    /// Keys per listing request (1 to 1000; default 1000).
    #[schemars(range(min = 1, max = 1000))]
    pub page_size: Option<usize>,
    /// The most objects one task folder may hold (task files only); default 1000.
    #[schemars(range(min = 1))]
    pub max_objects_per_task: Option<usize>,
    /// Caps for `.zip` objects, as for the ZIP source.
    #[serde(default)]
    pub archive_limits: ArchiveLimits,
}

/// How requests are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Signing {
    Keys {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    Anonymous,
    InstanceMetadata,
}

/// Settings that hold together, ready to build a client.
#[derive(Debug)]
pub struct Resolved {
    pub settings: S3Settings,
    /// The prefix without leading or trailing `/`.
    pub prefix: String,
    signing: Signing,
}

impl S3Settings {
    /// The settings from a source's JSON, checked for settings that contradict each other,
    /// with credentials resolved (`base_dir` anchors relative `*_file` paths).
    pub fn resolve(config: serde_json::Value, base_dir: &Path) -> Result<Resolved, PluginError> {
        let settings: S3Settings =
            serde_json::from_value(config).map_err(|e| config_error(format!("invalid settings: {e}")))?;
        let prefix = settings.prefix.trim_matches('/').to_owned();
        if prefix.split('/').any(|part| part == ".." || part == ".") || prefix.contains("//") {
            return Err(config_error(format!(
                "`prefix` {prefix:?} has an empty, `.` or `..` part"
            )));
        }
        match settings.endpoint.as_deref() {
            Some(endpoint) if endpoint.starts_with("http://") && !settings.allow_http => {
                return Err(config_error(format!(
                    "`endpoint` {endpoint} is plain http: set `allow_http = true` to allow it"
                )));
            }
            Some(endpoint) if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") => {
                return Err(config_error(format!("`endpoint` {endpoint} is not an http(s) URL")));
            }
            Some(endpoint) if settings.allow_http && !endpoint.starts_with("http://") => {
                return Err(config_error("`allow_http` is only for an `http://` endpoint"));
            }
            None if settings.allow_http => {
                return Err(config_error("`allow_http` is only for an `http://` endpoint"));
            }
            _ => {}
        }
        let signing = settings.signing(base_dir)?;
        Ok(Resolved {
            settings,
            prefix,
            signing,
        })
    }

    fn signing(&self, base_dir: &Path) -> Result<Signing, PluginError> {
        let read = |field: &str, value: &Option<String>, file: &Option<PathBuf>| match (value, file) {
            (Some(_), Some(_)) => Err(config_error(format!("set `{field}` or `{field}_file`, not both"))),
            (Some(value), None) => Ok(Some(value.clone())),
            (None, Some(file)) => {
                let file = base_dir.join(file);
                std::fs::read_to_string(&file)
                    .map(|text| Some(text.trim().to_owned()))
                    .map_err(|e| config_error(format!("cannot read `{field}_file` {}: {e}", file.display())))
            }
            (None, None) => Ok(None),
        };
        let key = read("access_key_id", &self.access_key_id, &self.access_key_id_file)?;
        let secret = read(
            "secret_access_key",
            &self.secret_access_key,
            &self.secret_access_key_file,
        )?;
        let token = read("session_token", &self.session_token, &self.session_token_file)?;
        let configured = key.is_some() || secret.is_some() || token.is_some();
        if self.anonymous && (configured || self.instance_metadata) {
            return Err(config_error(
                "`anonymous = true` signs nothing: remove the credentials or `instance_metadata`",
            ));
        }
        if self.anonymous {
            return Ok(Signing::Anonymous);
        }
        let (key, secret, token) = if configured {
            (key, secret, token)
        } else {
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            (
                env("AWS_ACCESS_KEY_ID"),
                env("AWS_SECRET_ACCESS_KEY"),
                env("AWS_SESSION_TOKEN"),
            )
        };
        match (key, secret) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Signing::Keys {
                access_key_id,
                secret_access_key,
                session_token: token,
            }),
            (None, None) if self.instance_metadata => Ok(Signing::InstanceMetadata),
            (None, None) => Err(config_error(
                "no credentials: set `access_key_id` and `secret_access_key` (or their `_file` settings), \
                 or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment; \
                 `anonymous = true` for a public bucket, `instance_metadata = true` on EC2 or ECS",
            )),
            (Some(_), None) => Err(config_error("`access_key_id` is set but `secret_access_key` is not")),
            (None, Some(_)) => Err(config_error("`secret_access_key` is set but `access_key_id` is not")),
        }
    }
}

impl Resolved {
    /// The client. No request is made here.
    pub fn client(&self) -> Result<AmazonS3, PluginError> {
        let s = &self.settings;
        // Short timeouts and few retries: the host retries a failed source on its own
        // schedule, and a run must not hang minutes on an unreachable service.
        let options = ClientOptions::new()
            .with_allow_http(s.allow_http)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(60));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(s.region.as_deref().unwrap_or("us-east-1"))
            .with_client_options(options)
            .with_retry(retry);
        // Path style by default for a custom endpoint (most S3-compatible services want
        // it), virtual-hosted style for AWS.
        let path_style = s.path_style.unwrap_or(s.endpoint.is_some());
        builder = builder.with_virtual_hosted_style_request(!path_style);
        if let Some(endpoint) = &s.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        builder = match &self.signing {
            Signing::Keys {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                let builder = builder
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key);
                match session_token {
                    Some(token) => builder.with_token(token),
                    None => builder,
                }
            }
            Signing::Anonymous => builder.with_skip_signature(true),
            // Without keys, object_store asks the instance metadata service.
            Signing::InstanceMetadata => builder,
        };
        builder
            .build()
            .map_err(|e| config_error(format!("cannot make an S3 client: {e}")))
    }

    /// The most objects one task folder may hold.
    pub fn max_objects_per_task(&self) -> usize {
        self.settings.max_objects_per_task.unwrap_or(1000)
    }

    /// Keys per listing request.
    pub fn page_size(&self) -> usize {
        self.settings.page_size.unwrap_or(1000).clamp(1, 1000)
    }
}
