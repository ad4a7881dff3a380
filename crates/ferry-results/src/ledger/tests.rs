use super::*;

/// An entry with every field set.
fn entry() -> LedgerEntry {
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    LedgerEntry {
        destination: "222222222222.dkr.ecr.us-west-2.amazonaws.com".into(),
        repository: "golden/app".into(),
        action: JobAction::Copy,
        source: JobSource {
            registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
            repository: "golden/app".into(),
            tag: Some("v1".into()),
            digest: Some(Digest::of(b"v1")),
        },
        status: Status::Failed,
        error_code: "auth".into(),
        error_message: Some("AccessDenied".into()),
        count: 3,
        first_seen: t("2026-01-01T00:00:00Z"),
        last_seen: t("2026-01-01T01:00:00Z"),
        next_attempt: t("2026-01-01T02:00:00Z"),
        config_fingerprint: "f1".into(),
        expires_at: t("2026-01-08T01:00:00Z"),
    }
}

#[test]
fn backoff_doubles_from_15_minutes_to_a_day() {
    let minutes: Vec<u64> = (0..=10).map(|n| backoff(n).as_secs() / 60).collect();
    assert_eq!(
        minutes,
        [15, 15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440]
    );
    assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
}

#[test]
fn an_item_reads_back_as_written() {
    let e = entry();
    let item = e.to_item();
    assert_eq!(
        item.get(ATTR_PK),
        Some(&AttributeValue::S(
            "222222222222.dkr.ecr.us-west-2.amazonaws.com/golden/app".into()
        ))
    );
    assert_eq!(
        item.get(ATTR_SK),
        Some(&AttributeValue::S(
            "copy#111111111111.dkr.ecr.us-east-1.amazonaws.com/golden/app:v1".into()
        ))
    );
    assert_eq!(
        item.get(ATTR_EXPIRES_AT),
        Some(&AttributeValue::N(e.expires_at.timestamp().to_string()))
    );
    assert_eq!(LedgerEntry::from_item(&item), Ok(e.clone()));
    let mut untagged = e;
    untagged.source.tag = None;
    let item = untagged.to_item();
    assert!(
        matches!(item.get(ATTR_SK), Some(AttributeValue::S(sk)) if sk.ends_with(&format!("@{}", Digest::of(b"v1")))),
        "{item:?}"
    );
    assert_eq!(LedgerEntry::from_item(&item), Ok(untagged));
}

#[test]
fn a_hostile_item_is_refused_with_the_attribute_named() {
    let good = entry().to_item();
    let cases: Vec<(&str, Option<AttributeValue>, &str)> = vec![
        ("count", Some(AttributeValue::N("0".into())), "`count` is 0"),
        ("count", Some(AttributeValue::N("-1".into())), "`count`"),
        ("count", Some(AttributeValue::N("1e9".into())), "`count`"),
        (
            "count",
            Some(AttributeValue::N("2000000".into())),
            "`count`",
        ),
        (
            "count",
            Some(AttributeValue::S("3".into())),
            "`count` is not a number",
        ),
        (
            "nextAttempt",
            Some(AttributeValue::N("99999999999".into())),
            "`nextAttempt`",
        ),
        ("nextAttempt", None, "no `nextAttempt`"),
        (
            "status",
            Some(AttributeValue::S("SUCCEEDED".into())),
            "not a failure",
        ),
        ("status", Some(AttributeValue::S("NOPE".into())), "`status`"),
        (
            "action",
            Some(AttributeValue::S("rm -rf".into())),
            "`action`",
        ),
        (
            "digest",
            Some(AttributeValue::S("sha256:zz".into())),
            "`digest`",
        ),
        (
            "errorCode",
            Some(AttributeValue::S("x".repeat(MAX_FIELD + 1))),
            "over 1024 bytes",
        ),
        (
            "errorCode",
            Some(AttributeValue::S(String::new())),
            "`errorCode` is empty",
        ),
        (
            "errorMessage",
            Some(AttributeValue::S("x".repeat(MAX_ERROR_MESSAGE + 1))),
            "`errorMessage`",
        ),
        (
            "destination",
            Some(AttributeValue::S("evil.example".into())),
            "the key is not",
        ),
        (
            "sk",
            Some(AttributeValue::S("copy#elsewhere".into())),
            "the key is not",
        ),
        (
            "configFingerprint",
            Some(AttributeValue::Bool(true)),
            "not a string",
        ),
    ];
    for (name, value, expected) in cases {
        let mut item = good.clone();
        match value {
            Some(v) => item.insert(name.to_string(), v),
            None => item.remove(name),
        };
        let error = LedgerEntry::from_item(&item).unwrap_err();
        assert!(error.contains(expected), "{name}: {error}");
    }
    let mut neither = good.clone();
    neither.remove("tag");
    neither.remove("digest");
    assert!(LedgerEntry::from_item(&neither).is_err());
}

#[test]
fn a_long_message_is_cut_when_written() {
    let mut e = entry();
    e.error_message = Some("é".repeat(MAX_ERROR_MESSAGE));
    let item = e.to_item();
    let back = LedgerEntry::from_item(&item).unwrap();
    let m = back.error_message.unwrap();
    assert!(
        m.len() <= MAX_ERROR_MESSAGE && m.ends_with('…'),
        "{}",
        m.len()
    );
}

#[test]
fn an_entry_holds_until_its_backoff_expires_for_its_config_and_digest() {
    let e = entry();
    let digest = e.source.digest.clone();
    let before = e.next_attempt - chrono::Duration::seconds(1);
    assert!(e.holds("f1", digest.as_ref(), before));
    assert!(!e.holds("f1", digest.as_ref(), e.next_attempt), "expired");
    assert!(!e.holds("f2", digest.as_ref(), before), "another config");
    assert!(
        !e.holds("f1", Some(&Digest::of(b"v2")), before),
        "another digest"
    );
    assert!(!e.holds("f1", None, before), "no digest");
}

#[test]
fn the_cursor_is_not_an_entry() {
    let cursor = HashMap::from([
        (ATTR_PK.to_string(), AttributeValue::S(CURSOR_PK.into())),
        (ATTR_SK.to_string(), AttributeValue::S(CURSOR_SK.into())),
    ]);
    assert!(!is_entry(&cursor));
    assert!(is_entry(&entry().to_item()));
}
