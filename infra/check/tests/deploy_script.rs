//! `scripts/deploy` keeps a configuration holding an external ID out of plain stack
//! parameters: it refuses it as `ReplicationConfig`, and with `FERRY_CONFIG_PARAMETER`
//! stores it as an SSM SecureString (from a file, never on a command line) and deploys with
//! `ExistingConfigParameterName`. Run offline in a scratch copy of the script with stand-ins
//! for `aws` and `sam` that record their arguments.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CONFIG_WITH_SECRET: &str = r#"{"rules": [{"destinations": [{"region": "eu-west-1",
  "registryId": "222222222222", "roleArn": "arn:aws:iam::222222222222:role/ferry-destination-eu-west-1",
  "externalId": "s3cret-external-id"}]}]}"#;
const CONFIG_PLAIN: &str =
    r#"{"rules": [{"destinations": [{"region": "eu-west-1", "registryId": "222222222222"}]}]}"#;
/// [`CONFIG_PLAIN`] as the script passes it to `sam`: compacted, in single quotes.
const PLAIN_PARAMETER: &str = r#"ReplicationConfig='{"rules":[{"destinations":[{"region":"eu-west-1","registryId":"222222222222"}]}]}'"#;

/// A scratch tree: `scripts/deploy`, a built template, a samconfig (no guided mode), and
/// recording stand-ins for `aws` and `sam`.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let repo = common::repo_root();
        let root = std::env::temp_dir().join(format!("ferry-deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["scripts", "target/sam/build", "infra", "bin"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::copy(repo.join("scripts/deploy"), root.join("scripts/deploy")).unwrap();
        std::fs::write(root.join("target/sam/build/template.yaml"), "{}\n").unwrap();
        std::fs::write(root.join("target/sam/arch"), "arm64\n").unwrap();
        std::fs::write(
            root.join("infra/samconfig.toml"),
            "version = 0.1\nparameter_overrides = [\"Architecture=arm64\"]\n",
        )
        .unwrap();
        // Each stand-in appends its arguments (one per line) and, for aws, the file a
        // file:// value points to, then a separator.
        for tool in ["aws", "sam"] {
            let script = format!(
                "#!/usr/bin/env bash\nfor a in \"$@\"; do\n  echo \"$a\" >> \"{log}\"\n  case \"$a\" in file://*) cat \"${{a#file://}}\" >> \"{log}\"; echo >> \"{log}\" ;; esac\ndone\necho ---- >> \"{log}\"\n",
                log = root.join(format!("{tool}.log")).display()
            );
            let path = root.join("bin").join(tool);
            std::fs::write(&path, script).unwrap();
            Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        }
        Scratch { root }
    }

    fn samconfig(&self, text: &str) {
        std::fs::write(self.root.join("infra/samconfig.toml"), text).unwrap();
    }

    fn config(&self, text: &str) -> PathBuf {
        let path = self.root.join("ferry.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(self.root.join("scripts/deploy"))
            .env("SAM", self.root.join("bin/sam"))
            .env("AWS_CLI", self.root.join("bin/aws"))
            .env_remove("FERRY_CONFIG")
            .env_remove("FERRY_CONFIG_PARAMETER")
            .env_remove("FERRY_CONFIG_KMS_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Runs the script, asserts that it succeeded, and returns what `sam` was given.
    fn run_ok(&self, env: &[(&str, &Path)]) -> String {
        let out = self.run(env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.log("sam")
    }

    fn log(&self, tool: &str) -> String {
        std::fs::read_to_string(self.root.join(format!("{tool}.log"))).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn deploy_refuses_an_external_id_in_the_plain_stack_parameter() {
    let s = Scratch::new("refuse");
    let config = s.config(CONFIG_WITH_SECRET);
    let out = s.run(&[("FERRY_CONFIG", &config)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "deploy accepted it: {stderr}");
    assert!(stderr.contains("externalId"), "{stderr}");
    assert!(stderr.contains("SecureString"), "{stderr}");
    assert_eq!(s.log("sam"), "", "sam must not run");
    assert_eq!(s.log("aws"), "", "aws must not run");

    // A configuration without one still goes in the stack parameter.
    let config = s.config(CONFIG_PLAIN);
    let sam = s.run_ok(&[("FERRY_CONFIG", &config)]);
    assert!(sam.lines().any(|l| l == PLAIN_PARAMETER), "{sam}");
    assert_eq!(s.log("aws"), "");
}

#[test]
fn deploy_stores_a_secret_configuration_as_a_secure_string() {
    let s = Scratch::new("secure");
    let config = s.config(CONFIG_WITH_SECRET);
    let key = "arn:aws:kms:us-east-1:111111111111:key/99999999-8888-7777-6666-555555555555";
    let sam = s.run_ok(&[
        ("FERRY_CONFIG", &config),
        ("FERRY_CONFIG_PARAMETER", Path::new("/ferry/config")),
        ("FERRY_CONFIG_KMS_KEY", Path::new(key)),
    ]);
    let aws = s.log("aws");
    let args: Vec<&str> = aws.lines().collect();
    for (flag, value) in [
        ("--name", "/ferry/config"),
        ("--type", "SecureString"),
        ("--key-id", key),
    ] {
        let at = args
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("{flag}: {aws}"));
        assert_eq!(args[at + 1], value, "{aws}");
    }
    assert_eq!(&args[..2], &["ssm", "put-parameter"]);
    // The value comes from a file (not the command line) and is the compacted config.
    let value = args.iter().position(|a| *a == "--value").unwrap();
    assert!(args[value + 1].starts_with("file://"), "{aws}");
    let stored: serde_json::Value = serde_json::from_str(args[value + 2]).unwrap();
    let given: serde_json::Value = serde_json::from_str(CONFIG_WITH_SECRET).unwrap();
    assert_eq!(stored, given);
    assert!(
        !args[value + 1].contains("s3cret"),
        "the secret is not an argument"
    );

    // The stack gets the parameter's name and key, never the secret.
    assert!(!sam.contains("s3cret-external-id"), "{sam}");
    for expected in [
        "ExistingConfigParameterName=/ferry/config",
        &format!("ConfigKmsKeyArn={key}"),
        "ReplicationConfig=''",
    ] {
        assert!(sam.lines().any(|l| l == expected), "{expected}: {sam}");
    }
}

/// `sam deploy --parameter-overrides` on the command line replaces the samconfig's
/// `parameter_overrides` (aws-sam-cli#2380): the script passes the samconfig's ones too, so
/// `FERRY_CONFIG=ferry.json make deploy` from the example keeps `SourceRepositoryArns` (no
/// default: a new stack fails without it) and the rest, and only its own keys win.
#[test]
fn deploy_keeps_the_samconfig_parameters_it_does_not_set() {
    let s = Scratch::new("merge");
    s.samconfig(
        &std::fs::read_to_string(common::repo_root().join("infra/samconfig.toml.example")).unwrap(),
    );
    let config = s.config(CONFIG_PLAIN);
    let sam = s.run_ok(&[("FERRY_CONFIG", &config)]);
    let args: Vec<&str> = sam.lines().collect();
    let at = args
        .iter()
        .position(|a| *a == "--parameter-overrides")
        .unwrap_or_else(|| panic!("{sam}"));
    let overrides: Vec<&str> = args[at + 1..]
        .iter()
        .take_while(|a| !a.starts_with("--") && **a != "----")
        .copied()
        .collect();
    for expected in [
        "SourceRepositoryArns=arn:aws:ecr:us-east-1:111111111111:repository/team/*",
        "DestinationRepositoryArns=arn:aws:ecr:eu-west-1:222222222222:repository/team/*",
        "ReconcileSchedule='rate(15 minutes)'",
        "AlarmEmail=ops@example.com",
        "Architecture=arm64",
        PLAIN_PARAMETER,
    ] {
        assert_eq!(
            overrides.iter().filter(|a| **a == expected).count(),
            1,
            "{expected}: {overrides:?}"
        );
    }
    for key in ["ReplicationConfig=", "Architecture="] {
        assert_eq!(
            overrides.iter().filter(|a| a.starts_with(key)).count(),
            1,
            "{key} given once, the script's value: {overrides:?}"
        );
    }
}
