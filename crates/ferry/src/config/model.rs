//! The configuration document: serde types mirroring the JSON.
//!
//! An ECR replication configuration (`aws ecr describe-registry` → `replicationConfiguration`)
//! is a valid document as-is; every other field is a Ferry extension. Field documentation
//! doubles as the JSON schema's descriptions.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::filter::{RepositoryFilter, TagFilter};
use super::gates::Gates;

/// A replication configuration: ECR's `replicationConfiguration` plus Ferry's extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplicationConfig {
    /// The registry images are replicated from. Optional: an ECR configuration applies to
    /// the registry it is set on, which Ferry may learn at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// Connection overrides by registry host (`host[:port]`), for example a local test
    /// registry served over plain HTTP.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registries: BTreeMap<String, RegistryEndpoint>,
    /// Replication rules. An image goes to a destination when any rule naming that
    /// destination selects it.
    pub rules: Vec<Rule>,
    /// The source registry's pull-through cache prefixes, read at run time
    /// (`DescribePullThroughCacheRules`), never part of the document: a repository under
    /// one is selected only by a rule that names it (see `config::pull_through`).
    #[serde(skip)]
    #[schemars(skip)]
    pub pull_through_prefixes: Vec<String>,
    /// For a source bound from each image's registry (its account or region left out):
    /// the pull-through cache prefixes of each registry read so far, by host. Binding the
    /// configuration to a registry ([`ReplicationConfig::for_source`]) makes its entry
    /// the bound configuration's `pull_through_prefixes`.
    #[serde(skip)]
    #[schemars(skip)]
    pub pull_through_by_registry: BTreeMap<String, Vec<String>>,
}

/// The registry replicated from: an ECR registry (`registryId` and `region`) or any OCI
/// registry (`registry`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceSpec {
    /// 12-digit AWS account ID of the source ECR registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    pub registry_id: Option<String>,
    /// AWS region of the source ECR registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"))]
    pub region: Option<String>,
    /// When `region` is left out: the regions whose images this configuration replicates
    /// (the regions that forward their events). An image of another region is not this
    /// configuration's; and a delete or an archive in one region is carried to a copy
    /// only when the same image is not still held, active, in another of these regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// `host[:port]` of a source OCI registry, instead of `registryId` and `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Repositories to list at the source, for registries that do not offer
    /// `/v2/_catalog` (Docker Hub, GHCR, ...). Empty: ECR's DescribeRepositories or the
    /// catalog. The rules' repository filters still apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// AWS Secrets Manager secret (read with Ferry's own identity, in the region of its
    /// ARN) holding the source's credentials: for an ECR source in another partition
    /// (`aws-cn`, `aws-us-gov`) an access key pair of that partition,
    /// `{"accessKeyId", "secretAccessKey"}`, used for its ECR token and every ECR API call;
    /// for an OCI source `{"username", "password"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_arn: Option<String>,
}

/// How to reach one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryEndpoint {
    /// Base URL used instead of `https://<host>`, e.g. `http://127.0.0.1:5000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow unencrypted HTTP. Required for an `http://` endpoint; without `endpoint` it
    /// means `http://<host>`.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("default" = false))]
    pub plain_http: bool,
    /// ECR registries only: base URL of the ECR API used for this registry's token and
    /// control-plane calls instead of the SDK's default endpoint, e.g. an ECR API VPC
    /// interface endpoint without private DNS
    /// (`https://vpce-0abc-1234.api.ecr.us-east-1.vpce.amazonaws.com`). HTTPS, unless the
    /// host is a loopback address or `plainHttp` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,
    /// Whether to try cross-repository blob mounts at this destination registry. Default
    /// for ECR: the account's `BLOB_MOUNTING` setting where Ferry can read it
    /// (GetAccountSetting with credentials of that account), else try; for others: try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_mounting: Option<bool>,
    /// Request rates (per second) this registry allows per ECR API action, for an account
    /// with raised quotas: each replaces ECR's default for its action (PutImage 10,
    /// InitiateLayerUpload 100, UploadLayerPart 500, CompleteLayerUpload 100,
    /// BatchCheckLayerAvailability 1,000, GetDownloadUrlForLayer 3,000, BatchGetImage
    /// 2,000), which apply to every ECR registry. A registry that is not ECR has a quota
    /// only for the actions given here (manifest PUT: `putImage`, upload POST:
    /// `initiateLayerUpload`, PATCH: `uploadLayerPart`, upload PUT:
    /// `completeLayerUpload`, blob HEAD: `batchCheckLayerAvailability`, blob GET:
    /// `getDownloadUrlForLayer`, manifest GET and HEAD: `batchGetImage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<ApiRates>,
    /// Certificate authorities (inline PEM, one certificate per entry) this registry's
    /// TLS certificate may chain to, for a registry on a private CA. Trusted for this
    /// host only, in addition to the system's root certificates (which `SSL_CERT_FILE`
    /// would replace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<String>,
}

/// Requests per second by ECR API action; each one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiRates {
    /// Manifest PUTs per second (ECR default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub put_image: Option<u32>,
    /// Upload POSTs (mounts included) per second (ECR default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub initiate_layer_upload: Option<u32>,
    /// Upload PATCHes per second (ECR default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub upload_layer_part: Option<u32>,
    /// Upload PUTs per second (ECR default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub complete_layer_upload: Option<u32>,
    /// Blob HEADs per second (ECR default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub batch_check_layer_availability: Option<u32>,
    /// Blob GETs per second (ECR default 3,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub get_download_url_for_layer: Option<u32>,
    /// Manifest GETs and HEADs per second (ECR default 2,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub batch_get_image: Option<u32>,
}

impl ApiRates {
    /// Every rate given, by its camelCase key (`putImage`), in document order.
    pub fn given(&self) -> Vec<(&'static str, u32)> {
        [
            ("putImage", self.put_image),
            ("initiateLayerUpload", self.initiate_layer_upload),
            ("uploadLayerPart", self.upload_layer_part),
            ("completeLayerUpload", self.complete_layer_upload),
            (
                "batchCheckLayerAvailability",
                self.batch_check_layer_availability,
            ),
            ("getDownloadUrlForLayer", self.get_download_url_for_layer),
            ("batchGetImage", self.batch_get_image),
        ]
        .into_iter()
        .filter_map(|(key, rate)| rate.map(|r| (key, r)))
        .collect()
    }
}

/// One replication rule: which repositories and tags go to which destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Where selected images are copied.
    pub destinations: Vec<DestinationSpec>,
    /// Repositories this rule selects; any filter may match. None means every repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repository_filters: Vec<RepositoryFilter>,
    /// Tags this rule selects; any filter may match. None means every tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_filters: Vec<TagFilter>,
    /// Tags this rule never selects, whatever `tagFilters` say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tag_filters: Vec<TagFilter>,
    /// Also replicate digest-only pushes (images without a tag). Tag filters do not apply
    /// to them.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("default" = false))]
    pub untagged: bool,
    /// Also copy the referrers of each image (signatures, SBOMs, attestations). Default
    /// true; but at an ECR destination with its own managed signing configuration (which
    /// signs what Ferry pushes), the source's signatures are copied only when this is set
    /// to `true` explicitly.
    // Read it with `Rule::referrers`; `None` means not written (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "bool", extend("default" = true))]
    pub referrers: Option<bool>,
    /// Propagate deletions of selected images to the destinations.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("default" = false))]
    pub deletes: bool,
    /// ECR native replication's `deleteReplication` (`{"enabled": true}`), accepted as
    /// `describe-registry` prints it: enabled means `deletes: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_replication: Option<DeleteReplication>,
    /// What ECR's archive storage class at the source does to the destination copies.
    /// `ignore`: archived source images are not copied, and destination copies keep their
    /// storage class. `follow`: archiving a source image archives its copy at each ECR
    /// destination (UpdateImageStorageClass `ARCHIVE`), restoring it restores the copy
    /// (`STANDARD`).
    #[serde(default, skip_serializing_if = "ArchiveMode::is_ignore")]
    #[schemars(extend("default" = "ignore"))]
    pub archive: ArchiveMode,
    /// Gates an image must pass before this rule copies it: a complete ECR scan with no
    /// finding above a severity, a trusted signature. An image that fails one is blocked;
    /// one whose scan is not complete yet is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Gates>,
    /// Copy only these platforms (`os/architecture[/variant]`) of an image index: Ferry
    /// writes a new index listing only them, so the copy has a digest of its own, and the
    /// referrers of the source index are not carried over. Empty: the image as it is,
    /// byte for byte.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

/// ECR native replication's per-rule delete replication setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteReplication {
    /// Whether image deletions and tag removals are replicated.
    pub enabled: bool,
}

/// A rule's `archive` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveMode {
    /// Destination copies keep their storage class (the default).
    #[default]
    Ignore,
    /// Destination copies are archived and restored with the source image.
    Follow,
}

impl ArchiveMode {
    /// Whether this is the default, `ignore`.
    pub fn is_ignore(&self) -> bool {
        *self == ArchiveMode::Ignore
    }
}

impl Rule {
    /// Whether the rule copies referrers (`referrers`, default true).
    pub fn referrers(&self) -> bool {
        self.referrers.unwrap_or(true)
    }

    /// Whether the rule says `referrers: true` in so many words (not by default).
    pub fn referrers_explicit(&self) -> bool {
        self.referrers == Some(true)
    }
}

/// One destination: an ECR registry (`registryId` and `region`) or any OCI registry
/// (`registry`), with optional renaming and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DestinationSpec {
    /// AWS region of the destination ECR registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"))]
    pub region: Option<String>,
    /// 12-digit AWS account ID of the destination ECR registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    pub registry_id: Option<String>,
    /// `host[:port]` of a destination OCI registry, instead of `registryId` and `region`.
    /// Credentials come from `credentialsSecretArn`, else from Docker's config.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Destination repository name template; `{repository}` is the source repository and
    /// `{registryId}`/`{region}` the source registry's. Default: the source name unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_name: Option<String>,
    /// IAM role to assume for writing to this ECR destination. `{accountId}` and `{region}`
    /// are the destination's (one role name for every account of an organization
    /// destination: `arn:aws:iam::{accountId}:role/ferry-destination-{region}`, the role the
    /// destination stack creates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// IAM role to assume for *reading* this ECR destination (listing, HEAD, describe):
    /// the reconcile function, and `ferry plan|verify|status`. `{accountId}` and
    /// `{region}` as in `roleArn`; the destination stack creates
    /// `arn:aws:iam::{accountId}:role/ferry-destination-read-{region}`. Without it, the CLI
    /// reads through `roleArn` and reconcile with its own identity (then the destination's
    /// registry policy must let it read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_role_arn: Option<String>,
    /// External ID passed when assuming `roleArn` (and `readRoleArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// ARN of a KMS key in the destination region, used to encrypt repositories Ferry creates
    /// (`{accountId}` and `{region}` as in `roleArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    /// Let the destination's repository creation template configure new repositories,
    /// instead of copying the source repository's settings.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("default" = false))]
    pub use_creation_template: bool,
    /// AWS Secrets Manager secret (read with Ferry's own identity, in the region of its
    /// ARN) holding the destination's credentials: for an OCI `registry`
    /// `{"username", "password"}`; for an ECR destination an access key pair,
    /// `{"accessKeyId", "secretAccessKey"}`, used for its ECR token and every ECR API call
    /// (never with an assumed role): required for an ECR destination in another partition
    /// than Ferry's (`aws-cn`, `aws-us-gov`), which no role can be assumed into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_arn: Option<String>,
    /// Every `ACTIVE` account of this AWS Organizations organizational unit (`ou-…`, or a
    /// root `r-…`), instead of `registryId`: the accounts are read from AWS Organizations
    /// at run time, so an account added to the OU becomes a destination with no change
    /// here. Needs `regions` (or `region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$"))]
    pub organizational_unit: Option<String>,
    /// With `organizationalUnit`: also the accounts of its child OUs, all the way down.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    #[schemars(extend("default" = true))]
    pub recursive: bool,
    /// Every `ACTIVE` account of the organization, instead of `registryId`. Needs
    /// `regions` (or `region`).
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("default" = false))]
    pub organization: bool,
    /// Regions of each account of `organizationalUnit` / `organization` to replicate to:
    /// one destination per account and region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Accounts of `organizationalUnit` / `organization` that are never destinations.
    /// The source account never is one either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_accounts: Vec<String>,
    /// IAM role (in the management account or a delegated administrator of AWS
    /// Organizations) to read the organization's accounts through. Default: the caller's
    /// own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_role_arn: Option<String>,
    /// Set on destinations that [`ReplicationConfig::resolve_accounts`] made from an
    /// organization destination: where in the document they come from. Never read from
    /// or written to JSON.
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) resolved_from: Option<ResolvedFrom>,
}

/// Where a destination resolved from an organization destination comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ResolvedFrom {
    /// The JSON path of the organization destination, e.g. `rules[0].destinations[1]`.
    pub path: String,
}

impl Default for DestinationSpec {
    fn default() -> Self {
        Self {
            region: None,
            registry_id: None,
            registry: None,
            repository_name: None,
            role_arn: None,
            read_role_arn: None,
            external_id: None,
            kms_key: None,
            use_creation_template: false,
            credentials_secret_arn: None,
            organizational_unit: None,
            recursive: true,
            organization: false,
            regions: Vec::new(),
            exclude_accounts: Vec::new(),
            organization_role_arn: None,
            resolved_from: None,
        }
    }
}

impl DestinationSpec {
    /// Whether the accounts of this destination come from AWS Organizations
    /// (`organizationalUnit` or `organization`).
    pub fn is_organization(&self) -> bool {
        self.organizational_unit.is_some() || self.organization
    }

    /// This destination with its organization fields cleared: the settings each account
    /// it resolves to gets.
    pub(crate) fn account_settings(&self) -> DestinationSpec {
        DestinationSpec {
            organizational_unit: None,
            recursive: true,
            organization: false,
            regions: Vec::new(),
            exclude_accounts: Vec::new(),
            organization_role_arn: None,
            ..self.clone()
        }
    }

    /// An ECR destination, as in ECR's native configuration.
    pub fn ecr(registry_id: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            registry_id: Some(registry_id.into()),
            region: Some(region.into()),
            ..Self::default()
        }
    }

    /// An OCI registry destination.
    pub fn oci(host: impl Into<String>) -> Self {
        Self {
            registry: Some(host.into()),
            ..Self::default()
        }
    }
}

/// The output of `aws ecr describe-registry`, accepted as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DescribeRegistryOutput {
    /// The account the configuration is set on; used as `source.registryId` when the
    /// configuration has no `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    pub registry_id: Option<String>,
    /// The replication configuration.
    pub replication_configuration: ReplicationConfig,
    /// Ferry's source, beside the document: completes or pins what `registryId` says
    /// (e.g. the `region`, or `repositories`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
}

/// A Ferry replication configuration: ECR's native replication configuration (bare, or the
/// whole `aws ecr describe-registry` output) with Ferry's extensions.
// Only used to generate the JSON schema; loading dispatches on the shape itself to keep
// precise error messages.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "Ferry replication configuration")]
#[allow(dead_code)] // Built by schemars only.
pub(crate) enum ConfigDocument {
    /// The whole `aws ecr describe-registry` output.
    DescribeRegistry(DescribeRegistryOutput),
    /// A bare replication configuration (`{"rules": [...]}`).
    Replication(ReplicationConfig),
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_false(value: &bool) -> bool {
    !*value
}
