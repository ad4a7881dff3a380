use super::*;
use ferry::config::ReplicationConfig;

fn config(text: &str) -> ReplicationConfig {
    ReplicationConfig::from_json(text).unwrap()
}

#[test]
fn the_fingerprint_follows_the_document_not_its_spelling() {
    let a = config(
        r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2"}]}]}"#,
    );
    let same = config(
        r#"{"rules": [{"destinations": [{"region": "us-west-2", "registryId": "222222222222"}]}],
            "source": {"region": "us-east-1", "registryId": "111111111111"}}"#,
    );
    let other = config(
        r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [{"destinations": [{"registryId": "222222222222", "region": "eu-west-1"}]}]}"#,
    );
    let f = config_fingerprint(&a);
    assert_eq!(f.len(), 32);
    assert_eq!(f, config_fingerprint(&same));
    assert_ne!(f, config_fingerprint(&other));
}

#[tokio::test]
async fn the_memory_ledger_keeps_entries_and_the_cursor() {
    let ledger = MemoryLedger::default();
    let mut result = ferry_results::testing::sample();
    result.status = Status::Failed;
    result.error_code = None;
    let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let entry = failure_entry(None, "f", &result, now);
    assert_eq!(
        entry.error_code, "FAILED",
        "the status when there is no code"
    );
    ledger.put(&entry).await.unwrap();
    assert_eq!(ledger.get(&entry.key()).await.unwrap(), Some(entry.clone()));
    assert_eq!(ledger.entries().await.unwrap().len(), 1);
    ledger.clear(&entry.key()).await.unwrap();
    assert!(ledger.entries().await.unwrap().is_empty());
    assert_eq!(ledger.cursor().await.unwrap(), None);
    ledger.set_cursor(Some("d/r copy#s/r:v1")).await.unwrap();
    assert_eq!(
        ledger.cursor().await.unwrap().as_deref(),
        Some("d/r copy#s/r:v1")
    );
}

#[test]
fn the_count_is_bounded_and_the_code_cut() {
    let mut result = ferry_results::testing::sample();
    result.error_code = Some("é".repeat(MAX_FIELD));
    let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut previous = failure_entry(None, "f", &result, now);
    assert!(previous.error_code.len() <= MAX_FIELD);
    previous.count = ferry_results::ledger::MAX_COUNT;
    let next = failure_entry(Some(&previous), "f", &result, now);
    assert_eq!(next.count, ferry_results::ledger::MAX_COUNT);
    assert_eq!(next.next_attempt - now, chrono::Duration::hours(24));
    assert_eq!(next.first_seen, previous.first_seen);
}
