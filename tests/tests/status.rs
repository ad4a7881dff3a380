//! `ferry status IMAGE` against a mix of destinations: complete, missing, different,
//! conflicted (an ECR-shaped destination whose moto repository is IMMUTABLE), a mutable
//! ECR destination holding another digest, one refusing the credentials and one on a
//! closed port; the last result events read back from a moto log group. Every registry
//! sits behind a counting proxy: one manifest HEAD at the source, one per destination.

use ferry_e2e::ecr::ENDPOINTS_ENV;
use ferry_e2e::ferry::describe;
use ferry_e2e::process::free_port;
use ferry_e2e::proxy::PathKind;
use ferry_e2e::results::{json_line, result_event};
use ferry_e2e::{
    DockerConfig, EcrRegistry, Moto, Proxy, Registry, error_codes, fixtures, run_ferry,
};
use serde_json::{Value, json};

const REPO: &str = "team/api";
const TAG: &str = "v1";
const REGION: &str = "eu-west-1";
const LOG_GROUP: &str = "/ferry/test/replicate";
/// When the logged results completed.
const DONE: &str = "2026-03-01T10:00:02Z";

/// Everything one status run looks at, torn down on drop.
struct World {
    moto: Moto,
    src_proxy: Proxy,
    oci_proxy: Proxy,
    ecr: EcrRegistry,
    ecr_proxy: Proxy,
    locked: Registry,
    closed: u16,
    docker: DockerConfig,
    dir: tempfile::TempDir,
    // Kept running for the proxies in front of them.
    _src: Registry,
    _oci: Registry,
    /// The image asked about, and what the different and conflicted destinations hold.
    digest: String,
    different: String,
    conflicting: String,
    mutable_other: String,
}

fn create_ecr_repository(moto: &Moto, name: &str, mutability: &str) {
    moto.json_call(
        "ecr",
        "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
        REGION,
        &json!({"repositoryName": name, "imageTagMutability": mutability}),
    )
    .expect("CreateRepository in moto");
}

impl World {
    fn start() -> World {
        let moto = Moto::start().expect("moto");
        let src = Registry::start().expect("source");
        let src_proxy = Proxy::start(&src).expect("source proxy");
        let image = fixtures::single_image(&src, REPO, TAG, 901).expect("source image");

        let oci = Registry::start().expect("oci destination");
        let oci_proxy = Proxy::start(&oci).expect("oci proxy");
        let copy = fixtures::single_image(&oci, &format!("complete/{REPO}"), TAG, 901)
            .expect("complete copy");
        assert_eq!(
            copy.digest, image.digest,
            "the same seed builds the same image"
        );
        let different = fixtures::single_image(&oci, &format!("different/{REPO}"), TAG, 902)
            .expect("different image");

        let ecr = EcrRegistry::start(ferry_e2e::moto::DEFAULT_ACCOUNT, REGION).expect("ecr");
        let ecr_proxy = Proxy::start(ecr.registry()).expect("ecr proxy");
        create_ecr_repository(&moto, REPO, "IMMUTABLE");
        create_ecr_repository(&moto, &format!("mutable/{REPO}"), "MUTABLE");
        let conflicting = fixtures::single_image(&ecr, REPO, TAG, 903).expect("conflicting");
        let mutable_other =
            fixtures::single_image(&ecr, &format!("mutable/{REPO}"), TAG, 904).expect("other");

        let locked = Registry::start_with_auth("someone", "not-ours").expect("locked registry");
        let closed = free_port().expect("a closed port");
        World {
            moto,
            src_proxy,
            oci_proxy,
            ecr,
            ecr_proxy,
            locked,
            closed,
            docker: DockerConfig::new().expect("docker config"),
            dir: tempfile::tempdir().expect("tmp"),
            _src: src,
            _oci: oci,
            digest: image.digest,
            different: different.digest,
            conflicting: conflicting.digest,
            mutable_other: mutable_other.digest,
        }
    }

    fn config(&self, destinations: Value) -> String {
        let config = json!({
            "source": {"registry": self.src_proxy.host()},
            "rules": [{
                "repositoryFilters": [{"filter": "team", "filterType": "PREFIX_MATCH"}],
                "destinations": destinations
            }]
        });
        let path = self
            .dir
            .path()
            .join(format!("ferry-{}.json", free_port().unwrap_or(0)));
        std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
        path.display().to_string()
    }

    fn every_kind(&self) -> String {
        let oci = self.oci_proxy.host();
        self.config(json!([
            {"registry": oci, "repositoryName": "complete/{repository}"},
            {"registry": oci, "repositoryName": "missing/{repository}"},
            {"registry": oci, "repositoryName": "different/{repository}"},
            {"registryId": self.ecr.account(), "region": REGION},
            {"registryId": self.ecr.account(), "region": REGION, "repositoryName": "mutable/{repository}"},
            {"registry": self.locked.host()},
            {"registry": format!("127.0.0.1:{}", self.closed)}
        ]))
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/{REPO}:{tag}", self.src_proxy.host())
    }

    fn status(&self, config: &str, image: &str, extra: &[&str]) -> std::process::Output {
        let mut env = self.moto.aws_env();
        env.push((
            ENDPOINTS_ENV.to_string(),
            format!("{}={}", self.ecr.ecr_host(), self.ecr_proxy.url()),
        ));
        env.push(self.docker.env());
        let mut args = vec!["status", "-c", config, image];
        args.extend_from_slice(extra);
        run_ferry(args, &env).expect("ferry runs")
    }
}

fn manifest_heads(proxy: &Proxy, repository: &str) -> usize {
    let prefix = format!("/v2/{repository}/manifests/");
    proxy
        .requests()
        .iter()
        .filter(|r| {
            r.method == "HEAD" && r.kind == PathKind::Manifest && r.path.starts_with(&prefix)
        })
        .count()
}

fn by_repository<'a>(report: &'a Value, registry: &str, repository: &str) -> &'a Value {
    report["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .find(|d| d["destination"] == registry && d["repository"] == repository)
        .unwrap_or_else(|| panic!("no {registry}/{repository} in {report}"))
}

#[test]
fn status_tells_complete_missing_different_conflict_denied_and_unreachable_apart() {
    let w = World::start();
    let oci = w.oci_proxy.host();
    let ecr = w.ecr.ecr_host();
    let src = w.src_proxy.host();
    let other_digest = format!("sha256:{}", "0".repeat(64));
    w.moto
        .put_log_lines(
            LOG_GROUP,
            "2026/03/01/[$LATEST]abc",
            &[
                "START RequestId: 1 Version: $LATEST".to_string(),
                json_line(&result_event((&src, REPO, TAG), &w.digest, (&oci, &format!("complete/{REPO}")), "SUCCEEDED", DONE)),
                // Lambda's own JSON wrapper around the line.
                json!({"level": "INFO", "message": json_line(&result_event((&src, REPO, TAG), &w.digest, (&ecr, REPO), "CONFLICT", DONE))}).to_string(),
                // Another image at the missing destination: not this one's result.
                json_line(&result_event((&src, REPO, TAG), &other_digest, (&oci, &format!("missing/{REPO}")), "SUCCEEDED", DONE)),
            ],
        )
        .expect("log lines in moto");

    let config = w.every_kind();
    let out = w.status(
        &config,
        &w.image(TAG),
        &["--output", "json", "--results-log-group", LOG_GROUP],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", describe(&out)));
    assert_eq!(report["source"]["digest"], w.digest.as_str());
    assert_eq!(report["source"]["reference"], w.image(TAG));
    assert_eq!(
        report["destinations"].as_array().map(Vec::len),
        Some(7),
        "{report}"
    );

    let complete = by_repository(&report, &oci, &format!("complete/{REPO}"));
    assert_eq!(complete["state"], "COMPLETE", "{complete}");
    assert_eq!(complete["digest"], w.digest.as_str());
    assert_eq!(complete["lastResult"]["status"], "SUCCEEDED");
    assert_eq!(
        complete["lastResult"]["completedAt"],
        "2026-03-01T10:00:02.000Z"
    );

    let missing = by_repository(&report, &oci, &format!("missing/{REPO}"));
    assert_eq!(missing["state"], "MISSING", "{missing}");
    assert!(missing.get("digest").is_none(), "{missing}");
    assert!(
        missing.get("lastResult").is_none(),
        "another image's result: {missing}"
    );

    let different = by_repository(&report, &oci, &format!("different/{REPO}"));
    assert_eq!(different["state"], "DIFFERENT", "{different}");
    assert_eq!(different["digest"], w.different.as_str());

    let conflict = by_repository(&report, &ecr, REPO);
    assert_eq!(conflict["state"], "CONFLICT", "{conflict}");
    assert_eq!(conflict["digest"], w.conflicting.as_str());
    assert_eq!(conflict["lastResult"]["status"], "CONFLICT");
    assert_eq!(conflict["lastResult"]["errorCode"], "tag-conflict");

    let mutable = by_repository(&report, &ecr, &format!("mutable/{REPO}"));
    assert_eq!(
        mutable["state"], "DIFFERENT",
        "a mutable ECR tag is no conflict: {mutable}"
    );
    assert_eq!(mutable["digest"], w.mutable_other.as_str());
    assert!(mutable.get("code").is_none(), "{mutable}");

    let denied = by_repository(&report, &w.locked.host(), REPO);
    assert_eq!(denied["state"], "DENIED", "{denied}");
    assert_eq!(denied["code"], "auth");

    let unreachable = by_repository(&report, &format!("127.0.0.1:{}", w.closed), REPO);
    assert_eq!(unreachable["state"], "UNREACHABLE", "{unreachable}");
    assert_eq!(unreachable["code"], "unreachable");

    // One manifest HEAD at the source, one per destination, nothing else asked of them.
    assert_eq!(
        manifest_heads(&w.src_proxy, REPO),
        1,
        "{:?}",
        w.src_proxy.counts()
    );
    for repo in ["complete", "missing", "different"] {
        assert_eq!(
            manifest_heads(&w.oci_proxy, &format!("{repo}/{REPO}")),
            1,
            "{repo}: {:?}",
            w.oci_proxy.counts()
        );
    }
    assert_eq!(
        manifest_heads(&w.ecr_proxy, REPO),
        1,
        "{:?}",
        w.ecr_proxy.counts()
    );
    assert_eq!(manifest_heads(&w.ecr_proxy, &format!("mutable/{REPO}")), 1);
    for proxy in [&w.src_proxy, &w.oci_proxy, &w.ecr_proxy] {
        let gets = proxy.count("GET", PathKind::Manifest) + proxy.count("GET", PathKind::Blob);
        assert_eq!(gets, 0, "status reads no content: {:?}", proxy.counts());
    }
}

#[test]
fn status_exits_0_when_complete_everywhere_and_1_for_an_image_the_source_lacks() {
    let w = World::start();
    let config = w.config(json!([
        {"registry": w.oci_proxy.host(), "repositoryName": "complete/{repository}"}
    ]));
    let out = w.status(&config, &w.image(TAG), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("COMPLETE") && l.contains(&format!("complete/{REPO}"))),
        "{text}"
    );
    assert!(
        text.contains("status: 1 destinations: 1 complete"),
        "{text}"
    );

    // By digest: the same answer.
    let by_digest = format!("{}/{REPO}@{}", w.src_proxy.host(), w.digest);
    let out = w.status(&config, &by_digest, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let out = w.status(&config, &w.image("no-such-tag"), &["--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        error_codes(&out),
        vec!["not-found".to_string()],
        "{}",
        describe(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "no status table for an unknown image: {}",
        describe(&out)
    );
}
