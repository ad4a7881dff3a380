//! The ledger in a DynamoDB table (`FERRY_LEDGER_TABLE`): `GetItem`, `PutItem` and
//! `DeleteItem` of one entry (replicate), a `Scan` of every entry and the cursor item's
//! `GetItem`/`PutItem` (reconcile).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use ferry_results::ledger::{ATTR_PK, ATTR_POSITION, ATTR_SK, CURSOR_PK, CURSOR_SK, scan};

use super::{Ledger, LedgerEntry, LedgerKey, MAX_CURSOR};
use crate::error::{PipelineError, sdk_message};

/// The failure ledger in a DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    /// Over a client and the table name.
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> DynamoLedger {
        DynamoLedger {
            client,
            table: table.to_string(),
        }
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn error<E, R>(
        &self,
        operation: &'static str,
        err: aws_sdk_dynamodb::error::SdkError<E, R>,
    ) -> PipelineError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
        R: std::fmt::Debug,
    {
        PipelineError::Ledger {
            table: self.table.clone(),
            operation,
            message: sdk_message(err),
        }
    }
}

fn key_item(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (ATTR_PK.to_string(), AttributeValue::S(pk.to_string())),
        (ATTR_SK.to_string(), AttributeValue::S(sk.to_string())),
    ])
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn get(&self, key: &LedgerKey) -> Result<Option<LedgerEntry>, PipelineError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key.pk, &key.sk)))
            .send()
            .await
            .map_err(|e| self.error("GetItem", e))?;
        match out.item() {
            None => Ok(None),
            Some(item) => {
                LedgerEntry::from_item(item)
                    .map(Some)
                    .map_err(|reason| PipelineError::LedgerItem {
                        table: self.table.clone(),
                        key: format!("{} {}", key.pk, key.sk),
                        reason,
                    })
            }
        }
    }

    async fn put(&self, entry: &LedgerEntry) -> Result<(), PipelineError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(entry.to_item()))
            .send()
            .await
            .map_err(|e| self.error("PutItem", e))?;
        Ok(())
    }

    async fn clear(&self, key: &LedgerKey) -> Result<(), PipelineError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key.pk, &key.sk)))
            .send()
            .await
            .map_err(|e| self.error("DeleteItem", e))?;
        Ok(())
    }

    async fn entries(&self) -> Result<HashMap<LedgerKey, LedgerEntry>, PipelineError> {
        let found = scan(&self.client, &self.table)
            .await
            .map_err(|e| PipelineError::Ledger {
                table: self.table.clone(),
                operation: "Scan",
                message: e.to_string(),
            })?;
        if found.truncated {
            tracing::warn!(table = %self.table, read = found.entries.len(), "failure ledger larger than one run reads: the entries not read hold nothing back");
        }
        Ok(found.entries.into_iter().map(|e| (e.key(), e)).collect())
    }

    async fn cursor(&self) -> Result<Option<String>, PipelineError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(CURSOR_PK, CURSOR_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", e))?;
        let malformed = |reason: &str| PipelineError::LedgerItem {
            table: self.table.clone(),
            key: format!("{CURSOR_PK} {CURSOR_SK}"),
            reason: reason.to_string(),
        };
        match out.item().and_then(|i| i.get(ATTR_POSITION)) {
            None => Ok(None),
            Some(AttributeValue::S(p)) if !p.is_empty() && p.len() <= MAX_CURSOR => {
                Ok(Some(p.clone()))
            }
            Some(AttributeValue::S(_)) => Err(malformed("`position` is empty or too long")),
            Some(_) => Err(malformed("`position` is not a string")),
        }
    }

    async fn set_cursor(&self, position: Option<&str>) -> Result<(), PipelineError> {
        let mut item = key_item(CURSOR_PK, CURSOR_SK);
        if let Some(p) = position.filter(|p| !p.is_empty() && p.len() <= MAX_CURSOR) {
            item.insert(ATTR_POSITION.to_string(), AttributeValue::S(p.to_string()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.error("PutItem", e))?;
        Ok(())
    }
}
