//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `ferry --version`: the version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("FERRY_GIT_COMMIT"),
    ")"
);

/// Ferry copies container images between registries: Amazon ECR in any region or account,
/// and any OCI registry. Content is streamed and SHA-256 verified; tags move last.
///
/// Credentials: Docker's config.json (DOCKER_CONFIG), and for ECR hosts a token from the
/// AWS SDK (the usual AWS credential chain). FERRY_REGISTRY_ENDPOINTS=host=url,... sends a
/// registry host to another URL. FERRY_LOG sets the log filter.
#[derive(Parser, Debug)]
#[command(name = "ferry", version = VERSION, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// More logging on stderr (-v: debug, -vv: trace). Secrets are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Copy one image (with its platforms and referrers) from SRC to DST.
    ///
    /// Examples:
    ///   ferry copy 111111111111.dkr.ecr.us-east-1.amazonaws.com/team/api:v1 \
    ///              222222222222.dkr.ecr.eu-west-1.amazonaws.com/team/api
    ///   ferry copy ghcr.io/org/tool@sha256:… 127.0.0.1:5000/tool:1.2
    ///
    /// DST without a tag or digest keeps SRC's tag. SRC by digest copies by digest.
    /// Exit codes: 0 copied or already there, 1 failed, 2 bad usage.
    #[command(verbatim_doc_comment)]
    Copy(CopyArgs),

    /// Show what `sync` would do: every selected source image against every destination
    /// (copy, skip, conflict, delete), with counts and bytes to move.
    Plan(PlanArgs),

    /// Copy everything the config selects that is missing or different at its
    /// destinations (the backfill ECR replication does not do). Idempotent: a second run
    /// moves nothing. Exit 1 when anything failed or conflicted.
    Sync(SyncArgs),

    /// Report drift between source and destinations: missing, different, extra.
    /// Exit 3 when drift is found, so cron and CI can alert.
    Verify {
        /// Config.
        #[command(flatten)]
        config: ConfigArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },

    /// Check a replication config; errors name the JSON path. Exit 2 when invalid.
    Validate(ValidateArgs),

    /// Where one source image stands at every destination the config sends it to:
    /// COMPLETE (same digest), MISSING, DIFFERENT (another digest), CONFLICT (an immutable
    /// tag holds another digest), UNREACHABLE or DENIED (with the error code), and the last
    /// result event when --results-log-group names the replicate function's log group.
    ///
    /// Examples:
    ///   ferry status -c ferry.json 111111111111.dkr.ecr.us-east-1.amazonaws.com/team/api:v1
    ///   ferry status -c ferry.json --output json \
    ///     --results-log-group /ferry/ferry-hub/replicate 127.0.0.1:5000/team/api@sha256:…
    ///
    /// One manifest HEAD per destination, 32 at once.
    /// Exit codes: 0 every destination COMPLETE, 1 anything else (a destination not
    /// complete, no destination selected, or the source does not hold the image),
    /// 2 bad usage (invalid reference or config, an image not of the config's source).
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),

    /// The images failing to replicate: per destination and source image whose latest
    /// result in the window is FAILED, CONFLICT or REJECTED, the error code, how often,
    /// and when first and last. Read from the result events in the replicate function's
    /// log group (FilterLogEvents, in AWS_REGION); an image that succeeded since is not
    /// listed.
    ///
    /// Examples:
    ///   ferry failures --results-log-group /ferry/ferry-hub/replicate
    ///   ferry failures --since 24h --output json
    ///
    /// Exit codes: 0 nothing failing, 1 failures listed, 2 bad usage.
    #[command(verbatim_doc_comment)]
    Failures(FailuresArgs),
}

/// `ferry failures` arguments.
#[derive(Args, Debug)]
pub(crate) struct FailuresArgs {
    /// How far back to read: a number and a unit, s, m, h or d (`30m`, `1h`, `7d`).
    #[arg(long, default_value = "1h", value_parser = parse_since)]
    pub since: std::time::Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// CloudWatch log group of the replicate function (`/ferry/<stack>/replicate`).
    #[arg(
        long,
        env = "FERRY_RESULTS_LOG_GROUP",
        required_unless_present = "ledger_table"
    )]
    pub results_log_group: Option<String>,
    /// DynamoDB table of the failure ledger (the hub's `LedgerTableName` output): list its
    /// entries (images reconcile holds back after a permanent failure, with their next
    /// attempt) instead of reading result events.
    #[arg(long, env = "FERRY_LEDGER_TABLE")]
    pub ledger_table: Option<String>,
}

/// `30m`, `1h`, `7d`: at most 30 days (CloudWatch's result events are read page by page).
pub(crate) fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: give a unit, s, m, h or d (`1h`)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number then s, m, h or d"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    if seconds == 0 || seconds > 30 * 86_400 {
        return Err(format!("{text:?}: between 1s and 30d"));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// `ferry status` arguments.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// Source image: host[:port]/repository:tag or host[:port]/repository@sha256:digest.
    pub image: String,
    /// Config.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// CloudWatch log group of the replicate function (`/ferry/<stack>/replicate`), read
    /// with FilterLogEvents (in AWS_REGION) for the last result event at each destination.
    #[arg(long, env = "FERRY_RESULTS_LOG_GROUP")]
    pub results_log_group: Option<String>,
}

/// The replication config option shared by plan, sync and verify.
#[derive(Args, Debug)]
pub(crate) struct ConfigArgs {
    /// Replication config: ECR's replicationConfiguration JSON, or Ferry's superset.
    #[arg(long, short = 'c', env = "FERRY_CONFIG_FILE")]
    pub config: std::path::PathBuf,
    /// Speak plain HTTP to every registry without an endpoint override.
    #[arg(long)]
    pub plain_http: bool,
    /// Region of a source the document names only by account (`describe-registry`
    /// output): default AWS_REGION, then AWS_DEFAULT_REGION.
    #[arg(long)]
    pub region: Option<String>,
}

/// `ferry plan` arguments.
#[derive(Args, Debug)]
pub(crate) struct PlanArgs {
    /// Config.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also list images already in place.
    #[arg(long)]
    pub all: bool,
}

/// `ferry sync` arguments.
#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    /// Config.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Plan only; copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Images (and blob transfers) in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Output format of the final summary.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also write the full JSON report to this file.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
}

/// `ferry validate` arguments.
#[derive(Args, Debug)]
pub(crate) struct ValidateArgs {
    /// Config file.
    pub config: std::path::PathBuf,
    /// Region of a source the document names only by account (`describe-registry`
    /// output): default AWS_REGION, then AWS_DEFAULT_REGION.
    #[arg(long)]
    pub region: Option<String>,
    /// Also read the accounts of `organizationalUnit` / `organization` destinations from
    /// AWS Organizations and print them (needs AWS credentials).
    #[arg(long)]
    pub resolve: bool,
    /// Also read the source registry: its native replication rules (DescribeRegistry) and
    /// repositories; warn where a native rule and a Ferry rule write the same repository
    /// of the same destination (needs AWS credentials).
    #[arg(long)]
    pub against_registry: bool,
    /// Speak plain HTTP to every registry without an endpoint override (with
    /// --against-registry).
    #[arg(long)]
    pub plain_http: bool,
}

/// `ferry copy` arguments.
#[derive(Args, Debug)]
pub(crate) struct CopyArgs {
    /// Source image: host[:port]/repository[:tag][@sha256:digest].
    pub src: String,
    /// Destination: host[:port]/repository[:tag].
    pub dst: String,
    /// Do not copy signatures, SBOMs and attestations attached to the image.
    #[arg(long)]
    pub no_referrers: bool,
    /// When DST already holds the image, still copy referrers added at SRC since (a few
    /// more requests; without it a re-copy costs two requests).
    #[arg(long, conflicts_with = "no_referrers")]
    pub recheck_referrers: bool,
    /// Speak plain HTTP to every registry (loopback registries always use it).
    #[arg(long)]
    pub plain_http: bool,
    /// Trust a private certificate authority for one registry: HOST[:PORT]=PEM_FILE
    /// (repeatable). It is added to the system's roots for that host only.
    #[arg(long = "ca-certificate", value_name = "HOST=PEM_FILE")]
    pub ca_certificates: Vec<String>,
    /// Output format of the report on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Blob transfers in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// Report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// One JSON document.
    Json,
}
