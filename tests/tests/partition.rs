//! Cross-partition replication (issue #10): an ECR destination, or source, in `aws-cn`
//! reached with an access key pair of that partition kept in a Secrets Manager secret of
//! the commercial partition, never with the commercial credentials.
//!
//! Two moto servers play two partitions: the commercial one (the source or destination
//! registry's ECR API, Secrets Manager holding the China keys) and the China one (default
//! account = the China account; ECR in `cn-north-1`), each behind a counting proxy that
//! keeps the SigV4 `Authorization` header and the operation of every call. The registries
//! are `docker-registry` instances behind the test proxy in ECR mode (Basic
//! `AWS:<token>` only, the token moto mints for the account), reached under their ECR host
//! names (`….cn-north-1.amazonaws.com.cn`) through `registries.<host>.endpoint`; the China
//! registry's ECR API through `registries.<host>.apiEndpoint`.

use std::collections::BTreeSet;
use std::process::Output;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use base64::Engine as _;
use ferry_e2e::ferry::describe;
use ferry_e2e::moto::auth_token_password;
use ferry_e2e::proxy::{EcrMode, Proxy, RequestRecord};
use ferry_e2e::{DockerConfig, EcrRegistry, Moto, run_ferry, verify_copy};
use ferry_e2e::{block, fixtures};
use serde_json::{Value, json};

/// The commercial account (moto's default).
const COM_ACCOUNT: &str = "123456789012";
/// The China account (the second moto's default).
const CN_ACCOUNT: &str = "210987654321";
/// Ferry's own (commercial) access key.
const COM_KEY: &str = "AKIDCOMMERCIAL000001";
const COM_SECRET: &str = "commercial-secret-access-key";
/// The China access key pair the secret holds.
const CN_KEY: &str = "AKIDCHINA00000000001";
const CN_SECRET: &str = "china-secret-access-key-7f3a9c";

/// An SDK config straight to a moto (not through its counting proxy).
fn sdk(moto: &Moto, region: &str, key: &str, secret: &str) -> SdkConfig {
    let creds = aws_sdk_ecr::config::Credentials::new(key, secret, None, None, "test");
    block(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto.endpoint())
            .region(Region::new(region.to_string()))
            .credentials_provider(creds)
            .load(),
    )
}

/// A registry standing in for an ECR registry, behind the ECR-mode proxy.
struct Ecr {
    ecr: EcrRegistry,
    proxy: Proxy,
}

/// Every credential `registry` saw was its own ECR token.
fn assert_only_own_token(registry: &Ecr, name: &str) {
    assert_eq!(
        registry.authorizations(),
        BTreeSet::from([registry.token_header()]),
        "credentials at {name}"
    );
}

impl Ecr {
    fn start(account: &str, region: &str) -> Ecr {
        let ecr = EcrRegistry::start(account, region).expect("ECR-shaped registry");
        let proxy = Proxy::start(ecr.registry()).expect("proxy");
        proxy.set_ecr_mode(EcrMode::new(&ecr.ecr_host(), &auth_token_password(account)));
        Ecr { ecr, proxy }
    }

    /// The `Authorization` header carrying this account's ECR token.
    fn token_header(&self) -> String {
        let raw = format!("AWS:{}", auth_token_password(self.ecr.account()));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Every distinct `Authorization` value the registry was sent.
    fn authorizations(&self) -> BTreeSet<String> {
        self.proxy
            .requests()
            .into_iter()
            .filter_map(|r| r.authorization_value)
            .collect()
    }
}

/// Two partitions: moto servers behind counting proxies, and the commercial secret.
struct Partitions {
    com: Moto,
    cn: Moto,
    com_api: Proxy,
    cn_api: Proxy,
    secret_arn: String,
}

impl Partitions {
    fn start() -> Partitions {
        let com = Moto::start().expect("commercial moto");
        let cn = Moto::start_as(CN_ACCOUNT).expect("China moto");
        let com_api = Proxy::start_for(&com.endpoint(), None).expect("commercial API proxy");
        let cn_api = Proxy::start_for(&cn.endpoint(), None).expect("China API proxy");
        // The China keys, in a secret of the commercial partition (created directly, so the
        // counting proxy sees only Ferry's calls).
        let secrets =
            aws_sdk_secretsmanager::Client::new(&sdk(&com, "us-east-1", COM_KEY, COM_SECRET));
        let keys = json!({"accessKeyId": CN_KEY, "secretAccessKey": CN_SECRET}).to_string();
        let created = block(
            secrets
                .create_secret()
                .name("ferry/cn-keys")
                .secret_string(keys)
                .send(),
        )
        .expect("create the secret");
        let secret_arn = created.arn().expect("secret ARN").to_string();
        Partitions {
            com,
            cn,
            com_api,
            cn_api,
            secret_arn,
        }
    }

    /// `ferry sync` with Ferry's commercial identity (every AWS call to the commercial
    /// proxy unless an `apiEndpoint` says otherwise) and no registry credentials.
    fn sync(&self, config: &Value) -> Output {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("ferry.json");
        std::fs::write(&path, serde_json::to_vec(config).expect("json")).expect("write");
        let docker = DockerConfig::new().expect("docker config");
        let env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", self.com_api.url().as_str()),
            ("AWS_ACCESS_KEY_ID", COM_KEY),
            ("AWS_SECRET_ACCESS_KEY", COM_SECRET),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([docker.env()])
        .collect();
        let args = [
            "sync",
            "-c",
            path.to_str().expect("utf8"),
            "--output",
            "json",
        ];
        let out = run_ferry(args, &env).expect("ferry runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(CN_SECRET) && !text.contains(COM_SECRET),
            "a secret access key was printed:\n{text}"
        );
        out
    }

    /// The repository `name` in `account`'s registry in `region`, as `moto` holds it.
    fn repository_in(moto: &Moto, account: &str, region: &str, name: &str) -> Option<String> {
        let ecr = aws_sdk_ecr::Client::new(&sdk(moto, region, "check", "check"));
        block(
            ecr.describe_repositories()
                .registry_id(account)
                .repository_names(name)
                .send(),
        )
        .ok()
        .and_then(|out| out.repositories().first().cloned())
        .and_then(|r| r.registry_id().map(str::to_string))
    }

    /// Each proxy saw signed calls, and only with its own partition's key: the commercial
    /// key never reached the China endpoint, the China key never the commercial one.
    fn assert_keys_stay_in_their_partition(&self) {
        let com: BTreeSet<String> = self.com_api.access_key_ids().into_iter().collect();
        let cn: BTreeSet<String> = self.cn_api.access_key_ids().into_iter().collect();
        assert_eq!(
            com,
            BTreeSet::from([COM_KEY.to_string()]),
            "keys at the commercial endpoint: {:?}",
            operations(&self.com_api.requests())
        );
        assert_eq!(
            cn,
            BTreeSet::from([CN_KEY.to_string()]),
            "keys at the China endpoint: {:?}",
            operations(&self.cn_api.requests())
        );
        let unsigned = |p: &Proxy| p.requests().iter().filter(|r| !r.authorization).count();
        assert_eq!(unsigned(&self.com_api), 0, "unsigned commercial calls");
        assert_eq!(unsigned(&self.cn_api), 0, "unsigned China calls");
    }
}

/// The operation of each AWS call (`X-Amz-Target` without the service prefix).
fn operations(records: &[RequestRecord]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r.amz_target.as_deref())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
        .collect()
}

fn count(records: &[RequestRecord], operation: &str) -> usize {
    operations(records)
        .iter()
        .filter(|o| o.as_str() == operation)
        .count()
}

fn endpoint(ecr: &Ecr) -> Value {
    json!({"endpoint": ecr.proxy.url(), "plainHttp": true})
}

#[test]
fn a_china_destination_is_written_with_its_own_keys_and_never_sees_a_commercial_credential() {
    let p = Partitions::start();
    let src = Ecr::start(COM_ACCOUNT, "us-east-1");
    let dst = Ecr::start(CN_ACCOUNT, "cn-north-1");
    assert_eq!(
        dst.ecr.ecr_host(),
        format!("{CN_ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn")
    );
    let fixture = fixtures::oci_index(&src.ecr, "team/api", "v1", 1001).expect("fixture");

    let mut cn_registry = endpoint(&dst);
    cn_registry["apiEndpoint"] = json!(p.cn_api.url());
    let config = json!({
        "source": {"registryId": COM_ACCOUNT, "region": "us-east-1"},
        "registries": {
            src.ecr.ecr_host(): endpoint(&src),
            dst.ecr.ecr_host(): cn_registry,
        },
        "rules": [{"destinations": [{
            "registryId": CN_ACCOUNT, "region": "cn-north-1",
            "repositoryName": "mirror/{repository}",
            "credentialsSecretArn": p.secret_arn,
        }]}]
    });
    let out = p.sync(&config);
    assert!(out.status.success(), "{}", describe(&out));
    verify_copy(
        src.ecr.registry(),
        &fixture,
        dst.ecr.registry(),
        "mirror/team/api",
    )
    .expect("the image is whole in the China registry");

    // The repository was created in the China partition, in the China account.
    assert_eq!(
        Partitions::repository_in(&p.cn, CN_ACCOUNT, "cn-north-1", "mirror/team/api").as_deref(),
        Some(CN_ACCOUNT)
    );
    for region in ["cn-north-1", "us-east-1"] {
        assert_eq!(
            Partitions::repository_in(&p.com, CN_ACCOUNT, region, "mirror/team/api"),
            None,
            "created in the commercial moto ({region})"
        );
    }

    // Which calls went where, signed by whom.
    p.assert_keys_stay_in_their_partition();
    let com = p.com_api.requests();
    let cn = p.cn_api.requests();
    assert_eq!(count(&com, "GetSecretValue"), 1, "{:?}", operations(&com));
    assert!(
        count(&com, "GetAuthorizationToken") >= 1,
        "source token: {:?}",
        operations(&com)
    );
    assert_eq!(count(&com, "CreateRepository"), 0, "{:?}", operations(&com));
    assert!(
        count(&cn, "GetAuthorizationToken") >= 1,
        "{:?}",
        operations(&cn)
    );
    assert_eq!(count(&cn, "CreateRepository"), 1, "{:?}", operations(&cn));
    assert_eq!(count(&cn, "GetSecretValue"), 0, "{:?}", operations(&cn));

    // The China token reached the China registry only, the commercial token the commercial
    // registry only.
    assert_only_own_token(&dst, "the China registry");
    assert_only_own_token(&src, "the commercial registry");
}

#[test]
fn a_china_source_is_read_with_its_own_keys_into_a_commercial_destination() {
    let p = Partitions::start();
    let src = Ecr::start(CN_ACCOUNT, "cn-north-1");
    let dst = Ecr::start(COM_ACCOUNT, "us-west-2");
    let fixture = fixtures::oci_index(&src.ecr, "golden/base", "2.0.0", 1002).expect("fixture");

    let mut cn_registry = endpoint(&src);
    cn_registry["apiEndpoint"] = json!(p.cn_api.url());
    let config = json!({
        "source": {
            "registryId": CN_ACCOUNT, "region": "cn-north-1",
            "credentialsSecretArn": p.secret_arn,
        },
        "registries": {
            src.ecr.ecr_host(): cn_registry,
            dst.ecr.ecr_host(): endpoint(&dst),
        },
        "rules": [{"destinations": [{"registryId": COM_ACCOUNT, "region": "us-west-2"}]}]
    });
    let out = p.sync(&config);
    assert!(out.status.success(), "{}", describe(&out));
    verify_copy(
        src.ecr.registry(),
        &fixture,
        dst.ecr.registry(),
        "golden/base",
    )
    .expect("the image is whole in the commercial registry");
    assert_eq!(
        Partitions::repository_in(&p.com, COM_ACCOUNT, "us-west-2", "golden/base").as_deref(),
        Some(COM_ACCOUNT)
    );

    p.assert_keys_stay_in_their_partition();
    let com = p.com_api.requests();
    let cn = p.cn_api.requests();
    assert_eq!(count(&com, "GetSecretValue"), 1, "{:?}", operations(&com));
    assert_eq!(count(&com, "CreateRepository"), 1, "{:?}", operations(&com));
    // The source's token and its repository settings come from the China API.
    assert!(
        count(&cn, "GetAuthorizationToken") >= 1,
        "{:?}",
        operations(&cn)
    );
    assert!(
        count(&cn, "DescribeRepositories") >= 1,
        "{:?}",
        operations(&cn)
    );
    assert_eq!(count(&cn, "CreateRepository"), 0, "{:?}", operations(&cn));
    assert_only_own_token(&src, "the China registry");
    assert_only_own_token(&dst, "the commercial registry");
}

#[test]
fn without_its_keys_a_china_destination_is_refused_before_any_call() {
    let p = Partitions::start();
    let config = json!({
        "source": {"registryId": COM_ACCOUNT, "region": "us-east-1"},
        "rules": [{"destinations": [{"registryId": CN_ACCOUNT, "region": "cn-north-1"}]}]
    });
    let out = p.sync(&config);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rules[0].destinations[0]")
            && stderr.contains("is in partition `aws-cn` but Ferry runs in `aws`")
            && stderr.contains("credentialsSecretArn"),
        "{stderr}"
    );
    assert_eq!(p.com_api.total_requests(), 0);
    assert_eq!(p.cn_api.total_requests(), 0);
}
