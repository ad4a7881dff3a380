//! ECR native replication beside Ferry, and ECR's own documents used as Ferry's config.
//!
//! - `ferry validate --against-registry` and `ferry plan` read the source's native
//!   replication rules (DescribeRegistry, moto) and warn where a native rule and a Ferry
//!   rule write the same repository of the same destination.
//! - The `aws ecr describe-registry` output works with `plan`, `sync` and `verify` as it
//!   is: the source is its `registryId` in the region of `AWS_REGION` (or `--region`), and
//!   stderr says so.

use ferry_e2e::ecr::endpoints_env;
use ferry_e2e::ferry::{ConfigFile, describe};
use ferry_e2e::{DockerConfig, EcrRegistry, Moto, fixtures, run_ferry};
use serde_json::json;

const PUT_REPLICATION: &str = "AmazonEC2ContainerRegistry_V20150921.PutReplicationConfiguration";

struct World {
    moto: Moto,
    src: EcrRegistry,
    dst: EcrRegistry,
    docker: DockerConfig,
}

impl World {
    fn start() -> World {
        let moto = Moto::start().expect("moto");
        let src = EcrRegistry::start_default().expect("source");
        for repository in ["team/api", "team/web", "other/tool"] {
            fixtures::single_image(src.registry(), repository, "1.0", 71).expect("fixture");
        }
        let dst = EcrRegistry::start("222222222222", "eu-west-1").expect("destination");
        World {
            moto,
            src,
            dst,
            docker: DockerConfig::new().expect("docker config"),
        }
    }

    /// The source's native replication rules (moto's default account is the source).
    fn put_native(&self, rules: serde_json::Value) {
        self.moto
            .json_call(
                "ecr",
                PUT_REPLICATION,
                self.src.region(),
                &json!({"replicationConfiguration": {"rules": rules}}),
            )
            .expect("PutReplicationConfiguration in moto");
    }

    fn native_rule(&self) -> serde_json::Value {
        json!({
            "destinations": [{"registryId": self.dst.account(), "region": self.dst.region()}],
            "repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}]
        })
    }

    fn ferry(&self, args: &[&str]) -> std::process::Output {
        let mut env = self.moto.aws_env();
        env.push(endpoints_env(&[&self.src, &self.dst]));
        env.push(self.docker.env());
        run_ferry(args, &env).expect("ferry runs")
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn warnings(out: &std::process::Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("warning: ECR native replication rule"))
        .map(str::to_string)
        .collect()
}

#[test]
fn validate_and_plan_warn_where_native_replication_writes_the_same_repositories() {
    let world = World::start();
    // A Ferry rule for every repository to the destination native replication also
    // serves for `team/`, and one renamed copy (lands elsewhere: no overlap).
    let config = ConfigFile::write(&json!({
        "source": {"registryId": world.src.account(), "region": world.src.region()},
        "rules": [
            {"destinations": [{"registryId": world.dst.account(), "region": world.dst.region()}]},
            {"destinations": [{"registryId": world.dst.account(), "region": world.dst.region(),
                               "repositoryName": "mirror/{repository}"}]}
        ]
    }))
    .expect("config");

    // No native rules yet: nothing to say.
    let out = world.ferry(&["validate", config.arg(), "--against-registry"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(warnings(&out), Vec::<String>::new(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 overlaps"),
        "{}",
        describe(&out)
    );

    world.put_native(json!([world.native_rule()]));
    let out = world.ferry(&["validate", config.arg(), "--against-registry"]);
    assert!(out.status.success(), "{}", describe(&out));
    let found = warnings(&out);
    assert_eq!(found.len(), 1, "{}", describe(&out));
    let host = world.dst.ecr_host();
    assert!(
        found[0].contains("native replication rule 0 and Ferry rule 0 both send 2 repositories (team/api, team/web)")
            && found[0].contains(&format!("Remove {host} from native rule 0")),
        "{}",
        found[0]
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 overlaps"),
        "{}",
        describe(&out)
    );

    // Plan says the same, in text (stderr) and JSON.
    let out = world.ferry(&["plan", "-c", config.arg()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(warnings(&out).len(), 1, "{}", describe(&out));
    let out = world.ferry(&["plan", "-c", config.arg(), "--output", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["nativeOverlaps"][0]["repositories"], 2, "{plan}");
    assert_eq!(
        plan["nativeOverlaps"][0]["destination"],
        host.as_str(),
        "{plan}"
    );
}

#[test]
fn describe_registry_output_runs_plan_sync_and_verify_as_it_is() {
    let world = World::start();
    world.put_native(json!([world.native_rule()]));
    // Exactly what `aws ecr describe-registry` prints, with delete replication on.
    let mut rule = world.native_rule();
    rule["deleteReplication"] = json!({"enabled": true});
    let document = json!({
        "registryId": world.src.account(),
        "replicationConfiguration": {"rules": [rule]}
    });
    let config = ConfigFile::write(&document).expect("config");
    let said = format!(
        "source: account {} (from the document) in {} (from AWS_REGION)",
        world.src.account(),
        world.src.region()
    );

    let out = world.ferry(&["plan", "-c", config.arg()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains(&said), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("plan: 2 to copy"), "{stdout}");
    // It is the native configuration itself: Ferry says it overlaps, all of it.
    assert_eq!(warnings(&out).len(), 1, "{}", describe(&out));

    let out = world.ferry(&["sync", "-c", config.arg()]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = world.ferry(&["verify", "-c", config.arg()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verify: 2 checked, 0 drifted"),
        "{}",
        describe(&out)
    );

    // --region wins over AWS_REGION: here, a region with nothing in it.
    let out = world.ferry(&["plan", "-c", config.arg(), "--region", "ap-south-1"]);
    assert!(
        stderr(&out).contains("in ap-south-1 (from --region)"),
        "{}",
        describe(&out)
    );
}
