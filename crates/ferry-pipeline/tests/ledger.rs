//! The failure ledger's DynamoDB implementation against moto's DynamoDB: entries written,
//! read, scanned and cleared as the table holds them, the cursor kept between reconcile
//! runs, items Ferry did not write refused, and a missing table reported. One moto for
//! the whole file, in one test.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use chrono::{DateTime, Utc};
use ferry::Digest;
use ferry_e2e::moto::Moto;
use ferry_pipeline::ledger::{DynamoLedger, Ledger, failure_entry, result_key};
use ferry_pipeline::queue::MemoryQueue;
use ferry_pipeline::reconcile::{DriftItem, DriftSource, Pacing, reconcile};
use ferry_pipeline::{JobAction, JobSource, Metrics, PipelineError, Status};

const TABLE: &str = "ferry-ledger";

async fn create_table(client: &aws_sdk_dynamodb::Client) {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("CreateTable");
}

fn failed(repository: &str, tag: &str) -> ferry_pipeline::ReplicationResult {
    let mut r = ferry_results::testing::sample();
    r.status = Status::Failed;
    r.action = JobAction::Copy;
    r.error_code = Some("auth".into());
    r.error_message = Some("AccessDeniedException: not authorized".into());
    r.source = JobSource {
        registry: "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
        repository: repository.into(),
        tag: Some(tag.into()),
        digest: Some(Digest::of(tag.as_bytes())),
    };
    r.destination.registry = "222222222222.dkr.ecr.us-west-2.amazonaws.com".into();
    r.destination.repository = repository.into();
    r
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

struct Fixed(Vec<DriftItem>);

#[async_trait::async_trait(?Send)]
impl DriftSource for Fixed {
    async fn drift(&self) -> Result<Vec<DriftItem>, PipelineError> {
        Ok(self.0.clone())
    }
}

fn drift(tags: &[&str]) -> Fixed {
    let config = ferry::config::ReplicationConfig::from_json(
        r#"{"source": {"registryId": "111111111111", "region": "us-east-1"},
            "rules": [{"destinations": [{"registryId": "222222222222", "region": "us-west-2"}]}]}"#,
    )
    .unwrap();
    Fixed(
        tags.iter()
            .map(|tag| DriftItem {
                action: JobAction::Copy,
                source: failed("app", tag).source,
                target: config.destinations_for("app", Some(tag)).unwrap().remove(0),
                conflict: false,
                gate: None,
            })
            .collect(),
    )
}

#[test]
fn the_dynamodb_ledger_against_moto() {
    let moto = Moto::start().expect("moto_server");
    let sdk = moto.sdk_config("us-east-1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        create_table(&client).await;
        let ledger = DynamoLedger::new(client.clone(), TABLE);

        // Written, read back and counted as written.
        let now = at("2026-01-01T00:00:00Z");
        let first = failure_entry(None, "config-1", &failed("app", "v1"), now);
        ledger.put(&first).await.unwrap();
        let key = result_key(&failed("app", "v1"));
        assert_eq!(ledger.get(&key).await.unwrap(), Some(first.clone()));
        let second = failure_entry(Some(&first), "config-1", &failed("app", "v1"), now);
        ledger.put(&second).await.unwrap();
        let back = ledger.get(&key).await.unwrap().unwrap();
        assert_eq!((back.count, back.first_seen), (2, now));
        ledger
            .put(&failure_entry(None, "config-1", &failed("app", "v2"), now))
            .await
            .unwrap();

        // The cursor is not an entry; a scan finds both entries.
        ledger.set_cursor(Some("x y")).await.unwrap();
        assert_eq!(ledger.cursor().await.unwrap().as_deref(), Some("x y"));
        let entries = ledger.entries().await.unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[&key], back);

        // An item Ferry did not write is skipped by the scan and refused by a read.
        let mut hostile: HashMap<String, AttributeValue> = back.to_item();
        hostile.insert("count".into(), AttributeValue::N("-5".into()));
        hostile.insert("sk".into(), AttributeValue::S("copy#evil".into()));
        client
            .put_item()
            .table_name(TABLE)
            .set_item(Some(hostile))
            .send()
            .await
            .unwrap();
        assert_eq!(ledger.entries().await.unwrap().len(), 2);
        let scanned = ferry_results::ledger::scan(&client, TABLE).await.unwrap();
        assert_eq!((scanned.entries.len(), scanned.malformed), (2, 1));
        let evil = ferry_results::ledger::LedgerKey {
            pk: key.pk.clone(),
            sk: "copy#evil".into(),
        };
        let error = ledger.get(&evil).await.unwrap_err();
        assert_eq!(error.code(), "ledger-item", "{error}");

        // Cleared.
        ledger.clear(&key).await.unwrap();
        assert_eq!(ledger.get(&key).await.unwrap(), None);
        ledger.clear(&key).await.unwrap();

        // A cursor item that is not a string is refused.
        client
            .put_item()
            .table_name(TABLE)
            .item("pk", AttributeValue::S("#reconcile".into()))
            .item("sk", AttributeValue::S("cursor".into()))
            .item("position", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
        assert_eq!(ledger.cursor().await.unwrap_err().code(), "ledger-item");
        ledger.set_cursor(None).await.unwrap();
        assert_eq!(ledger.cursor().await.unwrap(), None);

        // Reconcile through the table: v2 is held (its backoff runs to 00:15), the cap of
        // 2 goes to v1 and v3, and the next run continues after v3 from the table's
        // cursor.
        let metrics = Metrics::memory();
        let source = drift(&["v1", "v2", "v3", "v4"]);
        let pacing = Pacing {
            max_jobs: 2,
            ledger: Some(&ledger),
            fingerprint: "config-1",
            now: at("2026-01-01T00:10:00Z"),
        };
        let q = MemoryQueue::default();
        let run = reconcile("r1", &source, &q, &metrics, &pacing)
            .await
            .unwrap();
        let tags = |q: &MemoryQueue| -> Vec<String> {
            q.jobs()
                .iter()
                .map(|j| j.source.tag.clone().unwrap())
                .collect()
        };
        assert_eq!((run.held, run.enqueued, run.capped), (1, 2, true));
        assert_eq!(tags(&q), ["v1", "v3"]);
        assert!(
            ledger
                .cursor()
                .await
                .unwrap()
                .is_some_and(|c| c.ends_with(":v3"))
        );
        let q = MemoryQueue::default();
        let run = reconcile("r2", &source, &q, &metrics, &pacing)
            .await
            .unwrap();
        assert_eq!(tags(&q), ["v4"]);
        assert_eq!(run.cursor, None);
        assert_eq!(ledger.cursor().await.unwrap(), None);
        assert_eq!(metrics.sum("LedgerErrors", &[]), 0.0);

        // A table that does not exist is a ledger error naming the table and the
        // operation.
        let error = DynamoLedger::new(client.clone(), "absent")
            .put(&first)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "ledger");
        let text = error.to_string();
        assert!(
            text.contains(
                "failure ledger absent: DynamoDB PutItem failed: ResourceNotFoundException"
            ),
            "{text}"
        );
    });
}
