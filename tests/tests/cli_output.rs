//! What the CLI prints besides its results. Logging caps only lower a target's level: at
//! the default verbosity `ferry plan` against ECR (moto) prints no DEBUG or TRACE line of any crate (the AWS SDK's included), `-v`
//! shows Ferry's own debug lines, and even `FERRY_LOG=trace` never shows the SDK's TRACE.
//! `ferry --version` names the git commit the binary was built from.

use ferry_e2e::ecr::endpoints_env;
use ferry_e2e::ferry::{ConfigFile, describe};
use ferry_e2e::{DockerConfig, EcrRegistry, Moto, Registry, fixtures, run_ferry};
use serde_json::json;

fn lines_at(stderr: &str, level: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w.contains(level)))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_default_verbosity_prints_no_debug_line_of_any_crate() {
    let moto = Moto::start().expect("moto");
    let src = EcrRegistry::start_default().expect("source");
    fixtures::oci_index(&src, "team/app", "1.0.0", 5).expect("fixture");
    // An ECR destination (listed through the SDK) and an OCI one (through the registry API).
    let dst = EcrRegistry::start("222222222222", "eu-west-1").expect("destination");
    let oci = Registry::start().expect("oci destination");
    let config = ConfigFile::write(&json!({
        "source": {"registryId": src.account(), "region": src.region()},
        "registries": {oci.host(): {"endpoint": oci.url(), "plainHttp": true}},
        "rules": [{"destinations": [
            {"registryId": dst.account(), "region": dst.region()},
            {"registry": oci.host()}
        ]}]
    }))
    .expect("config");
    let docker = DockerConfig::new().expect("docker config");
    let run = |extra: &[&str], log: Option<&str>| {
        let mut env = moto.aws_env();
        env.push(endpoints_env(&[&src, &dst]));
        env.push(docker.env());
        if let Some(filter) = log {
            env.push(("FERRY_LOG".into(), filter.into()));
        }
        let mut args = vec!["plan", "-c", config.arg()];
        args.extend_from_slice(extra);
        let out = run_ferry(&args, &env).expect("runs");
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let quiet = run(&[], None);
    assert_eq!(lines_at(&quiet, "DEBUG"), Vec::<String>::new(), "{quiet}");
    assert_eq!(lines_at(&quiet, "TRACE"), Vec::<String>::new(), "{quiet}");

    let verbose = run(&["-v"], None);
    assert!(
        !verbose.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {verbose:?}"
    );
    let debug = lines_at(&verbose, "DEBUG");
    assert!(
        debug.iter().any(|l| l.contains("ferry")),
        "-v shows Ferry's debug lines: {verbose}"
    );
    assert!(
        !debug.iter().any(|l| l.contains("aws_smithy")),
        "-v keeps the SDK at INFO: {verbose}"
    );

    let everything = run(&[], Some("trace"));
    let sdk_trace: Vec<String> = lines_at(&everything, "TRACE")
        .into_iter()
        .filter(|l| l.contains("aws_smithy_runtime"))
        .collect();
    assert_eq!(sdk_trace, Vec::<String>::new());
    assert!(
        !lines_at(&everything, "TRACE").is_empty(),
        "FERRY_LOG=trace still shows other crates' TRACE"
    );
}

#[test]
fn version_names_the_commit() {
    let out = run_ferry(["--version"], &[] as &[(&str, &str)]).expect("runs");
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let version = env!("CARGO_PKG_VERSION");
    let commit = text
        .strip_prefix(&format!("ferry {version} ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`{text}` is not `ferry {version} (<commit>)`"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
}
