//! Shape checks for the ARNs and IDs a destination may carry (role, KMS key, secret).

use std::sync::LazyLock;

use regex::Regex;

use super::registry::{check_region, check_registry_id, partition_of};

static PARTITION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^aws(?:-[a-z]+)*$").expect("static regex"));
static ROLE_RESOURCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^role/(?:[A-Za-z0-9_+=,.@-]+/)*[A-Za-z0-9_+=,.@-]+$").expect("static regex")
});
static KMS_RESOURCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:key/[A-Za-z0-9-]+|alias/[A-Za-z0-9_/-]+)$").expect("static regex")
});
static SECRET_RESOURCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^secret:[A-Za-z0-9_/+=.@-]+$").expect("static regex"));
static EXTERNAL_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_+=,.@:/-]+$").expect("static regex"));

/// The six parts of `arn:partition:service:region:account:resource`.
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn parse<'a>(text: &'a str, service: &str, example: &str) -> Result<Arn<'a>, String> {
    let mut parts = text.splitn(6, ':');
    let arn = match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) => Arn {
            partition,
            service,
            region,
            account,
            resource,
        },
        _ => {
            return Err(format!(
                "`{text}` is not an ARN (expected e.g. `{example}`)"
            ));
        }
    };
    if !PARTITION.is_match(arn.partition) {
        return Err(format!("`{text}`: unknown partition `{}`", arn.partition));
    }
    if arn.service != service {
        return Err(format!(
            "`{text}` is a `{}` ARN, expected a `{service}` ARN (e.g. `{example}`)",
            arn.service
        ));
    }
    check_registry_id(arn.account)
        .map_err(|_| format!("`{text}`: account `{}` is not 12 digits", arn.account))?;
    Ok(arn)
}

/// The partition of an ARN (`aws`, `aws-cn`, `aws-us-gov`, ...), when `text` is one.
pub(crate) fn arn_partition(text: &str) -> Option<&str> {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(partition), Some(_)) if PARTITION.is_match(partition) => Some(partition),
        _ => None,
    }
}

/// Checks an IAM role ARN such as `arn:aws:iam::111122223333:role/ferry-push`.
pub(crate) fn check_role_arn(text: &str) -> Result<(), String> {
    let example = "arn:aws:iam::111122223333:role/ferry-push";
    let arn = parse(text, "iam", example)?;
    if !arn.region.is_empty() {
        return Err(format!("`{text}`: IAM ARNs have no region"));
    }
    // IAM role names are at most 64 characters.
    let name = arn.resource.rsplit('/').next().unwrap_or_default();
    if !ROLE_RESOURCE.is_match(arn.resource) || name.len() > 64 {
        return Err(format!(
            "`{text}` is not a role ARN (expected e.g. `{example}`)"
        ));
    }
    Ok(())
}

/// Checks a KMS key ARN (key or alias) and that it lives in `region`, the destination region:
/// a repository can only be encrypted with a key of its own region.
pub(crate) fn check_kms_key(text: &str, region: &str) -> Result<(), String> {
    let example = format!(
        "arn:{}:kms:{region}:111122223333:key/<key-id>",
        partition_of(region)
    );
    let arn = parse(text, "kms", &example).map_err(|e| {
        format!("{e}; a full key or alias ARN is required so its region can be checked")
    })?;
    if !KMS_RESOURCE.is_match(arn.resource) {
        return Err(format!(
            "`{text}`: expected `key/<key-id>` or `alias/<name>` after the account"
        ));
    }
    if arn.region != region {
        return Err(format!(
            "KMS key `{text}` is in region `{}` but the destination is in `{region}`: ECR needs a key of the repository's own region",
            arn.region
        ));
    }
    if arn.partition != partition_of(region) {
        return Err(format!(
            "`{text}`: partition `{}` does not serve region `{region}`",
            arn.partition
        ));
    }
    Ok(())
}

/// Checks an AWS Secrets Manager secret ARN.
pub(crate) fn check_secret_arn(text: &str) -> Result<(), String> {
    let example = "arn:aws:secretsmanager:us-east-1:111122223333:secret:ferry/ghcr-AbCdEf";
    let arn = parse(text, "secretsmanager", example)?;
    check_region(arn.region).map_err(|e| format!("`{text}`: {e}"))?;
    if !SECRET_RESOURCE.is_match(arn.resource) {
        return Err(format!(
            "`{text}` is not a secret ARN (expected e.g. `{example}`)"
        ));
    }
    Ok(())
}

/// Checks an STS external ID (2 to 1224 characters of `[A-Za-z0-9_+=,.@:/-]`).
pub(crate) fn check_external_id(text: &str) -> Result<(), String> {
    if (2..=1224).contains(&text.len()) && EXTERNAL_ID.is_match(text) {
        Ok(())
    } else {
        Err("externalId must be 2 to 1224 characters of letters, digits and `+=,.@:/-_`".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert_eq!(
            check_role_arn("arn:aws:iam::111122223333:role/ferry"),
            Ok(())
        );
        assert_eq!(
            check_role_arn("arn:aws-cn:iam::111122223333:role/path/to/ferry"),
            Ok(())
        );
        for bad in [
            "arn:aws:iam::111122223333:user/ferry",
            "arn:aws:iam:us-east-1:111122223333:role/ferry",
            "arn:aws:iam::1111:role/ferry",
            "arn:aws:sts::111122223333:role/ferry",
            "role/ferry",
            "arn:aws:iam::111122223333:role/",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kms_key_region_must_match() {
        let key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(check_kms_key(key, "eu-west-1"), Ok(()));
        let error = check_kms_key(key, "us-east-1").unwrap_err();
        assert!(error.contains("is in region `eu-west-1`"), "{error}");
        assert_eq!(
            check_kms_key("arn:aws:kms:eu-west-1:111122223333:alias/ecr", "eu-west-1"),
            Ok(())
        );
        assert!(check_kms_key("1234abcd-12ab-34cd-56ef-1234567890ab", "eu-west-1").is_err());
        assert!(
            check_kms_key("arn:aws:kms:cn-north-1:111122223333:key/abc", "cn-north-1").is_err()
        );
    }

    #[test]
    fn partitions_of_arns() {
        assert_eq!(
            arn_partition("arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:k-AbC"),
            Some("aws-cn")
        );
        assert_eq!(
            arn_partition("arn:aws-us-gov:iam::111122223333:role/x"),
            Some("aws-us-gov")
        );
        assert_eq!(
            arn_partition("arn:aws:iam::111122223333:role/x"),
            Some("aws")
        );
        assert_eq!(arn_partition("role/x"), None);
        assert_eq!(arn_partition("arn:AWS:iam::1:role/x"), None);
    }

    #[test]
    fn secret_arns_and_external_ids() {
        assert_eq!(
            check_secret_arn("arn:aws:secretsmanager:us-east-1:111122223333:secret:ghcr-AbC"),
            Ok(())
        );
        assert!(check_secret_arn("arn:aws:secretsmanager:us-east-1:111122223333:ghcr").is_err());
        assert!(check_secret_arn("arn:aws:ssm:us-east-1:111122223333:secret:x").is_err());
        assert_eq!(check_external_id("workload-7f3a"), Ok(()));
        assert!(check_external_id("x").is_err());
        assert!(check_external_id("has space").is_err());
    }
}
