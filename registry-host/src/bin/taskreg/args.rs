//! The command line's arguments: global flags, one variant per command.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "taskreg",
    version,
    about = "A registry of Ratchet JavaScript tasks: find, check and catalogue them"
)]
pub struct Cli {
    /// Database URL: sqlite://PATH (default ./taskreg.db) or postgres://USER@HOST/DB.
    #[arg(long, env = "TASKREG_DATABASE_URL", global = true)]
    pub database: Option<String>,
    /// Configuration file (default ./taskreg.toml when present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Machine-readable output on stdout; logs stay on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct WatchTiming {
    /// Quiet time before file changes are acted on.
    #[arg(long, default_value_t = 100)]
    pub debounce_ms: u64,
    /// How often remote sources are polled.
    #[arg(long, default_value_t = 30)]
    pub poll_secs: u64,
    /// How often every source is rescanned as a backstop.
    #[arg(long, default_value_t = 600)]
    pub full_rescan_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan the sources and bring the catalogue up to date.
    Sync {
        /// Folders to sync as ad-hoc filesystem sources instead of the configured sources.
        paths: Vec<PathBuf>,
        /// Run every validation rule at `error` (`[validation] strict = true`): tolerated
        /// findings refuse their task, and any problem left exits 1.
        #[arg(long)]
        strict: bool,
        /// Loads in flight at once (default: 4 per core).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Let a scan remove more than `lifecycle.max_removal_share` of a source's tasks.
        #[arg(long)]
        allow_mass_removal: bool,
    },
    /// List the available task versions (with --all, unavailable ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Show one task version: NAME for the newest available, or NAME@VERSION.
    Show { task: String },
    /// Parse and check task folders without a database.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Make a minisign key pair for signing tasks (the secret key is encrypted with a
    /// password read from TASKREG_KEY_PASSWORD or asked for on the terminal, unless
    /// --no-password).
    Keygen {
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// Leave the secret key unencrypted (for automation).
        #[arg(long)]
        no_password: bool,
        /// Replace key files that exist.
        #[arg(long)]
        force: bool,
    },
    /// Check each task under PATH and write its signature (signature.minisig) next to it.
    Sign {
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Verify the signature of each task under PATH against the public keys given (default:
    /// the config's trusted keys), without a database; exit 1 on any bad or missing one.
    Verify {
        #[arg(long = "public-key", value_name = "FILE")]
        public_keys: Vec<PathBuf>,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write PATH/.ratchet/index.json from the tasks of the tree at PATH (with --check,
    /// say how the index it has differs from them, and exit 1 when it does).
    Index {
        path: PathBuf,
        #[arg(long)]
        check: bool,
    },
    /// List the current problems.
    Problems,
    /// List the current conflicts: versions offered with different contents.
    Conflicts,
    /// Every version of a task ever seen, with availability and digests.
    History { name: String },
    /// How each source's latest scan went, and the long-lived processes (watch, serve) with their caches. Exit 1 when a
    /// source's latest scan failed.
    Status,
    /// Retire a source removed from the configuration now, instead of after its grace
    /// period: say what becomes unavailable, and with --yes do it (history is kept).
    Forget {
        source: String,
        /// Do it (without: show what would become unavailable, change nothing, exit 1).
        #[arg(long)]
        yes: bool,
    },
    /// Sync, then keep the catalogue current as files change and remote sources move.
    Watch {
        /// Folders or archives to watch instead of the configured sources.
        paths: Vec<PathBuf>,
        #[command(flatten)]
        timing: WatchTiming,
    },
    /// Serve the catalogue over HTTP (see docs/http-protocol.md).
    Serve {
        /// Keep the catalogue current while serving, as `taskreg watch` does.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        timing: WatchTiming,
        /// Address to listen on (default: `[serve] listen`, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Require `Authorization: Bearer TOKEN` on /v1 and /metrics.
        #[arg(long, env = "TASKREG_SERVE_TOKEN", conflicts_with = "token_file")]
        token: Option<String>,
        /// Read the token from this file (it then appears in no process list).
        #[arg(long)]
        token_file: Option<std::path::PathBuf>,
    },
    /// List every source kind: built in, or from which plugin library, with versions.
    /// Exit 1 when a configured plugin library was refused.
    Plugins,
    /// Measure sync speed on a generated tree against `tar` reading the same tree.
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Tasks to generate (each with both schemas and two tests).
    #[arg(long, default_value_t = 10_000)]
    pub tasks: usize,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Generate the tree here and keep it (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also run `taskreg watch` on the tree and time this many edits until the database
    /// has the new content (0: skip).
    #[arg(long, default_value_t = 20)]
    pub watch_edits: usize,
    /// Also sync the same tree from a git repository through this git source plugin
    /// library (`cargo build --release -p git-source`): cold (clone and load every task),
    /// no-change resync (fetch and walk the tree) and a commit that changes one task.
    #[arg(long)]
    pub git_plugin: Option<PathBuf>,
    /// Also publish the tree to a bucket of the S3-compatible server at `--s3-endpoint`
    /// and sync it through this S3 source plugin library (`cargo build --release -p
    /// s3-source`): cold, unchanged rescan (one listing) and one changed task, each run
    /// next to the same sync through the filesystem source.
    #[arg(long, requires = "s3_endpoint")]
    pub s3_plugin: Option<PathBuf>,
    /// The S3-compatible server for `--s3-plugin`; the tree is uploaded with unsigned
    /// requests, which a local test server accepts (`moto_server -p 9000`).
    #[arg(long, requires = "s3_plugin")]
    pub s3_endpoint: Option<String>,
    /// Also serve the synced catalogue (`taskreg serve`, one catalogue connection, then a
    /// pool of 8) and send it this many requests, `--serve-concurrency` at a time: bundles,
    /// semver lookups, task histories and index pages (0: skip).
    #[arg(long, default_value_t = 2000)]
    pub serve_requests: usize,
    /// Requests in flight at once during the serve measurement.
    #[arg(long, default_value_t = 32)]
    pub serve_concurrency: usize,
    /// Also serve the synced catalogue and time a second registry (SQLite) syncing from it
    /// over loopback: cold, and an unchanged re-poll.
    #[arg(long)]
    pub chain: bool,
    /// Also time the web pages (`/ui/`: catalogue, a search, the last page, a task,
    /// problems, sources) on the synced catalogue, one request at a time.
    #[arg(long)]
    pub pages: bool,
    /// Also time cold syncs of a signed copy of the tree (trusted key, `require`),
    /// interleaved with cold syncs of the unsigned tree: what verifying costs.
    #[arg(long)]
    pub signed: bool,
    /// Measure syncs of trees of each of these sizes instead (`--scale 1000,10000,100000`):
    /// wall and CPU µs per task, and peak memory, per size (no watch, serve or git).
    #[arg(long, value_delimiter = ',')]
    pub scale: Vec<usize>,
}
