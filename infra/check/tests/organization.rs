//! Organization destinations in the infra (issue 10): the hub gets AWS Organizations
//! permissions only when asked (`OrganizationAccess`), through exactly the reader role
//! (`role`) or as exactly the three List actions (`direct`); the functions get the
//! organization cache TTL; `infra/organization-reader.yaml` trusts exactly the hub's three
//! function roles and may list accounts, nothing else.

mod common;

use common::*;
use ferry_infra_check::{Rendered, actions, as_list, get_att, iam_statements, load, render};
use serde_json::{Value, json};

const ROLES: [&str; 3] = ["DispatchRole", "ReplicateRole", "ReconcileRole"];

/// The three Organizations actions the engine calls (`crates/ferry/src/organizations.rs`).
const ORG_LIST: [&str; 3] = [
    "organizations:ListAccounts",
    "organizations:ListAccountsForParent",
    "organizations:ListChildren",
];

/// The Allow statements of one hub role.
fn role_statements(r: &Rendered, role: &str) -> Vec<Value> {
    iam_statements(r)
        .into_iter()
        .filter(|(origin, _)| origin.split('/').next() == Some(role))
        .map(|(_, st)| st)
        .collect()
}

/// The statements of `role` granting an action of `service` (`sts`, `organizations`).
fn granting(r: &Rendered, role: &str, service: &str) -> Vec<Value> {
    let prefix = format!("{service}:");
    role_statements(r, role)
        .into_iter()
        .filter(|st| actions(st).iter().any(|a| a.starts_with(&prefix)))
        .collect()
}

fn ttl(r: &Rendered, function: &str) -> Option<Value> {
    r.props(function)["Environment"]["Variables"]
        .get("FERRY_ORGANIZATION_TTL_SECONDS")
        .cloned()
}

/// The Sid of a hub role's one sts grant besides the organization reader: replicate assumes
/// the destination roles (`DestinationRoleArns`), reconcile only their read roles
/// (`DestinationReadRoleArns`), dispatch none.
fn destination_sts_sid(role: &str) -> &'static str {
    match role {
        "ReplicateRole" => "AssumeDestinationRoles",
        "ReconcileRole" => "AssumeDestinationReadRoles",
        other => panic!("{other} assumes no destination role"),
    }
}

#[test]
fn without_organization_access_nothing_reads_the_organization() {
    let doc = load(HUB).unwrap();
    assert_eq!(
        doc["Parameters"]["OrganizationAccess"]["Default"],
        json!("none")
    );
    assert_eq!(
        doc["Parameters"]["OrganizationAccess"]["AllowedValues"],
        json!(["none", "role", "direct"])
    );
    for (label, r) in [
        ("defaults", hub(&[("ReplicationConfig", "{}")])),
        ("all features", hub(HUB_ALL)),
        ("secure configuration", hub_all_secure()),
    ] {
        assert_eq!(r.rule_failures, Vec::<String>::new(), "{label}");
        for (origin, st) in iam_statements(&r) {
            let text = st.to_string();
            assert!(
                !text.contains("organizations:") && !text.contains("Organization"),
                "{label} {origin}: {st}"
            );
        }
        for role in ROLES {
            for st in granting(&r, role, "sts") {
                assert_eq!(
                    st["Sid"],
                    json!(destination_sts_sid(role)),
                    "{label} {role}"
                );
            }
        }
        for (function, _) in FUNCTIONS {
            assert_eq!(ttl(&r, function), None, "{label} {function}");
        }
    }
    // A reader role without OrganizationAccess=role would be ignored: refused instead.
    let r = hub(&[
        ("ReplicationConfig", "{}"),
        ("OrganizationRoleArn", ORG_ROLE),
    ]);
    assert_eq!(r.rule_failures.len(), 1, "{:?}", r.rule_failures);
    assert!(r.rule_failures[0].contains("OrganizationAccess=role"));
}

#[test]
fn role_access_lets_each_function_assume_exactly_the_reader_role() {
    let r = hub_org_role();
    assert_eq!(r.rule_failures, Vec::<String>::new());
    for role in ROLES {
        let sts = granting(&r, role, "sts");
        assert_eq!(sts.len(), 1, "{role}: {sts:?}");
        assert_eq!(sts[0]["Sid"], json!("AssumeOrganizationReader"), "{role}");
        assert_eq!(actions(&sts[0]), strings(&["sts:AssumeRole"]), "{role}");
        assert_eq!(sts[0]["Resource"], json!(ORG_ROLE), "{role}");
        assert_eq!(sts[0]["Effect"], json!("Allow"), "{role}");
        assert_eq!(
            granting(&r, role, "organizations"),
            Vec::<Value>::new(),
            "{role}"
        );
    }
    // With destination roles too, replicate's allow-list stays its own statement.
    let r = hub(&with(
        HUB_ALL,
        &[
            ("OrganizationAccess", "role"),
            ("OrganizationRoleArn", ORG_ROLE),
        ],
    ));
    let sids: Vec<Value> = granting(&r, "ReplicateRole", "sts")
        .iter()
        .map(|st| st["Sid"].clone())
        .collect();
    assert_eq!(
        sids,
        vec![
            json!("AssumeDestinationRoles"),
            json!("AssumeOrganizationReader")
        ]
    );
    check_least_privilege("hub organization role", &r);

    // role without the role's ARN: CloudFormation refuses, and no empty Resource is rendered.
    let r = hub(&[("ReplicationConfig", "{}"), ("OrganizationAccess", "role")]);
    assert_eq!(r.rule_failures.len(), 1, "{:?}", r.rule_failures);
    assert!(r.rule_failures[0].contains("OrganizationRoleArn"));
    for role in ROLES {
        assert_eq!(granting(&r, role, "sts"), Vec::<Value>::new(), "{role}");
    }
    let doc = load(HUB).unwrap();
    for bad in [
        "*",
        "arn:aws:iam::*:role/ferry-organization-reader",
        "arn:aws:iam::999999999999:role/*",
        "arn:aws:iam::999999999999:root",
    ] {
        let params = [
            ("SourceRepositoryArns", SOURCE_REPOS),
            ("OrganizationAccess", "role"),
            ("OrganizationRoleArn", bad),
        ];
        assert!(render(&doc, &params).is_err(), "OrganizationRoleArn={bad}");
    }
}

#[test]
fn direct_access_grants_exactly_the_three_list_actions() {
    for (label, r) in [
        ("direct", hub_org_direct()),
        (
            "direct, all features",
            hub(&with(HUB_ALL, &[("OrganizationAccess", "direct")])),
        ),
    ] {
        assert_eq!(r.rule_failures, Vec::<String>::new(), "{label}");
        for role in ROLES {
            let org = granting(&r, role, "organizations");
            assert_eq!(org.len(), 1, "{label} {role}: {org:?}");
            assert_eq!(org[0]["Sid"], json!("ReadOrganization"), "{label} {role}");
            assert_eq!(actions(&org[0]), sorted(&ORG_LIST), "{label} {role}");
            assert_eq!(org[0]["Resource"], json!("*"), "{label} {role}");
            for st in granting(&r, role, "sts") {
                assert_eq!(
                    st["Sid"],
                    json!(destination_sts_sid(role)),
                    "{label} {role}"
                );
            }
        }
        check_least_privilege(label, &r);
    }
}

#[test]
fn the_organization_cache_reaches_all_three_functions() {
    let decl = &load(HUB).unwrap()["Parameters"]["OrganizationCacheSeconds"];
    assert_eq!(
        (
            &decl["Type"],
            &decl["Default"],
            &decl["MinValue"],
            &decl["MaxValue"]
        ),
        (&json!("Number"), &json!(900), &json!(0), &json!(86400))
    );
    for (label, r) in [("role", hub_org_role()), ("direct", hub_org_direct())] {
        for (function, _) in FUNCTIONS {
            assert_eq!(ttl(&r, function), Some(json!("900")), "{label} {function}");
        }
    }
    let r = hub(&[
        ("ReplicationConfig", "{}"),
        ("OrganizationAccess", "direct"),
        ("OrganizationCacheSeconds", "120"),
    ]);
    for (function, _) in FUNCTIONS {
        assert_eq!(ttl(&r, function), Some(json!("120")), "{function}");
    }
}

#[test]
fn the_granted_actions_are_the_ones_the_engine_calls() {
    let code =
        std::fs::read_to_string(repo_root().join("crates/ferry/src/organizations.rs")).unwrap();
    let re = regex::Regex::new(r"\.list_([a-z_]+)\(\)").unwrap();
    let mut called: Vec<String> = re
        .captures_iter(&code)
        .map(|c| {
            let pascal: String = c[1]
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            format!("organizations:List{pascal}")
        })
        .collect();
    called.sort();
    called.dedup();
    assert_eq!(called, sorted(&ORG_LIST));
    // What the templates grant is what the engine calls, in both ways of reading.
    let direct = hub_org_direct();
    for role in ROLES {
        let granted: Vec<String> = granting(&direct, role, "organizations")
            .iter()
            .flat_map(actions)
            .collect();
        assert_eq!(granted, called, "{role}");
    }
    let reader = org_reader(&[]);
    let granted: Vec<String> = iam_statements(&reader)
        .iter()
        .flat_map(|(_, st)| actions(st))
        .collect();
    assert_eq!(granted, called, "organization reader");
}

#[test]
fn the_reader_trusts_exactly_the_hub_roles_and_may_only_list_accounts() {
    let doc = load(ORG_READER).unwrap();
    assert_eq!(doc.get("Transform"), None, "plain CloudFormation");
    assert_eq!(
        doc["Parameters"]["RoleName"]["Default"],
        json!("ferry-organization-reader")
    );
    assert_eq!(doc["Parameters"]["HubRoleArns"].get("Default"), None);
    let r = org_reader(&[]);
    assert_eq!(r.rule_failures, Vec::<String>::new());
    let roles: Vec<&String> = r
        .resources_of_type("AWS::IAM::Role")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(roles, vec!["OrganizationReaderRole"]);
    assert_eq!(
        r.doc["Resources"].as_object().unwrap().len(),
        1,
        "the role is all the stack creates"
    );
    let props = r.props("OrganizationReaderRole");
    assert_eq!(props["RoleName"], json!("ferry-organization-reader"));
    let trust = as_list(&props["AssumeRolePolicyDocument"]["Statement"]);
    assert_eq!(trust.len(), 1);
    assert_eq!(
        trust[0],
        json!({
            "Sid": "FerryHubFunctions",
            "Effect": "Allow",
            "Principal": {"AWS": HUB_ROLE_ARNS},
            "Action": "sts:AssumeRole",
        }),
        "exactly the hub's roles, no condition or external ID"
    );
    let statements = iam_statements(&r);
    assert_eq!(statements.len(), 1, "{statements:?}");
    let (_, st) = &statements[0];
    assert_eq!(actions(st), sorted(&ORG_LIST));
    assert_eq!(st["Resource"], json!("*"));
    assert_eq!(st["Effect"], json!("Allow"));
    assert_eq!(
        r.doc["Outputs"]["RoleArn"]["Value"],
        get_att("OrganizationReaderRole", "Arn")
    );
    check_least_privilege("organization reader", &r);

    for bad in [
        "*",
        "",
        "arn:aws:iam::111111111111:root",
        "arn:aws:iam::*:role/ferry-ReplicateRole-BBB",
        "arn:aws:iam::111111111111:role/*",
        "111111111111",
    ] {
        assert!(
            render(&doc, &[("HubRoleArns", bad)]).is_err(),
            "HubRoleArns={bad:?} must be refused"
        );
    }
}

#[test]
fn the_hub_outputs_the_roles_the_reader_trusts() {
    let r = hub(&[]);
    let outputs = &r.doc["Outputs"];
    assert_eq!(
        outputs["FunctionRoleArns"]["Value"],
        json!({"Fn::Join": [",", ROLES.iter().map(|role| get_att(role, "Arn")).collect::<Vec<_>>()]})
    );
    for role in ROLES {
        assert_eq!(
            outputs[format!("{role}Arn")]["Value"],
            get_att(role, "Arn"),
            "{role}"
        );
    }
    let described = load(ORG_READER).unwrap()["Parameters"]["HubRoleArns"]["Description"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(described.contains("FunctionRoleArns"));
}
