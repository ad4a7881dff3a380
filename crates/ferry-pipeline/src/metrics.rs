//! CloudWatch Embedded Metric Format: one JSON line per record on stdout, which Lambda's
//! log pipeline turns into metrics in namespace `Ferry`.
//!
//! Written by hand rather than through the `metrics` facade (`metrics_cloudwatch_embedded`):
//! a global recorder cannot be observed per test, and each job here is one record with a
//! fixed dimension set anyway.
//!
//! Dimensions are bounded: `status` at most, never a destination, repository or account.
//! The number of metric series (each costs money, and CloudWatch `SEARCH` stops at 500)
//! does not grow with the number of destinations; per-destination detail is a property
//! of the record (searchable in CloudWatch Logs Insights) and in the result events.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// The CloudWatch namespace.
pub const NAMESPACE: &str = "Ferry";

/// CloudWatch units used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Bytes.
    Bytes,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// One EMF record: dimensions (one dimension set) and metric values.
#[derive(Clone, Debug, Default)]
pub struct Record {
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, Unit, f64)>,
    properties: Map<String, Value>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Record {
        Record::default()
    }

    /// Add a dimension (`destination`, `status`).
    pub fn dimension(mut self, name: &str, value: &str) -> Record {
        self.dimensions.push((name.to_string(), value.to_string()));
        self
    }

    /// Add a metric value.
    pub fn metric(mut self, name: &str, unit: Unit, value: f64) -> Record {
        self.metrics.push((name.to_string(), unit, value));
        self
    }

    /// Add a searchable property that is not a dimension (an event id, a digest).
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Record {
        self.properties.insert(name.to_string(), value.into());
        self
    }

    /// The EMF JSON document, stamped `timestamp_ms`.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut root = self.properties.clone();
        let dims: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        let defs: Vec<Value> = self
            .metrics
            .iter()
            .map(|(n, u, _)| json!({"Name": n, "Unit": u.as_str()}))
            .collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dims], "Metrics": defs}],
            }),
        );
        for (n, v) in &self.dimensions {
            root.insert(n.clone(), Value::String(v.clone()));
        }
        for (n, _, v) in &self.metrics {
            root.insert(n.clone(), json!(v));
        }
        Value::Object(root)
    }
}

/// Where EMF lines go: stdout (Lambda), or memory (tests and the local demo).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    memory: Option<Arc<Mutex<Vec<Value>>>>,
}

impl Metrics {
    /// Lines to stdout.
    pub fn stdout() -> Metrics {
        Metrics { memory: None }
    }

    /// Lines kept in memory, readable with [`Metrics::records`].
    pub fn memory() -> Metrics {
        Metrics {
            memory: Some(Arc::default()),
        }
    }

    /// Emit one record.
    pub fn emit(&self, record: Record) {
        let doc = record.to_json(chrono::Utc::now().timestamp_millis());
        match &self.memory {
            Some(m) => m.lock().unwrap_or_else(|p| p.into_inner()).push(doc),
            None => println!("{doc}"),
        }
    }

    /// The records kept in memory (empty for stdout).
    pub fn records(&self) -> Vec<Value> {
        self.memory
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    /// The metric series the records kept in memory make: each metric name with the
    /// values of its record's dimensions (what CloudWatch bills and `SEARCH` counts).
    pub fn series(&self) -> std::collections::BTreeSet<(String, Vec<(String, String)>)> {
        let mut out = std::collections::BTreeSet::new();
        for record in self.records() {
            let Some(defs) = record["_aws"]["CloudWatchMetrics"].as_array() else {
                continue;
            };
            for def in defs {
                for set in def["Dimensions"].as_array().into_iter().flatten() {
                    let dims: Vec<(String, String)> = set
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|d| {
                            let value = record[d].as_str().unwrap_or_default();
                            (d.to_string(), value.to_string())
                        })
                        .collect();
                    for m in def["Metrics"].as_array().into_iter().flatten() {
                        let name = m["Name"].as_str().unwrap_or_default().to_string();
                        out.insert((name, dims.clone()));
                    }
                }
            }
        }
        out
    }

    /// Sum of one metric over the records kept in memory whose dimensions match `filter`.
    pub fn sum(&self, metric: &str, filter: &[(&str, &str)]) -> f64 {
        self.records()
            .iter()
            .filter(|r| {
                filter
                    .iter()
                    .all(|(k, v)| r.get(*k).and_then(Value::as_str) == Some(*v))
            })
            .filter_map(|r| r.get(metric).and_then(Value::as_f64))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let r = Record::new()
            .dimension("destination", "r/a")
            .dimension("status", "SUCCEEDED")
            .metric("Jobs", Unit::Count, 1.0)
            .metric("BytesCopied", Unit::Bytes, 42.0)
            .property("eventId", "e-1");
        let v = r.to_json(1000);
        assert_eq!(
            v["_aws"],
            json!({"Timestamp": 1000, "CloudWatchMetrics": [{
                "Namespace": "Ferry",
                "Dimensions": [["destination", "status"]],
                "Metrics": [{"Name": "Jobs", "Unit": "Count"}, {"Name": "BytesCopied", "Unit": "Bytes"}]
            }]})
        );
        assert_eq!(v["destination"], "r/a");
        assert_eq!(v["BytesCopied"], 42.0);
        assert_eq!(v["eventId"], "e-1");
    }

    #[test]
    fn memory_sums() {
        let m = Metrics::memory();
        m.emit(
            Record::new()
                .dimension("status", "A")
                .metric("Jobs", Unit::Count, 1.0),
        );
        m.emit(
            Record::new()
                .dimension("status", "B")
                .metric("Jobs", Unit::Count, 2.0),
        );
        assert_eq!(m.sum("Jobs", &[]), 3.0);
        assert_eq!(m.sum("Jobs", &[("status", "B")]), 2.0);
        assert!(Metrics::stdout().records().is_empty());
    }
}
