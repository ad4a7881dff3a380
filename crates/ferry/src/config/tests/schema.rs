//! The committed JSON schema must match the types.

use std::path::PathBuf;

use crate::config::json_schema;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/ferry-config.schema.json")
}

/// Regenerate with `FERRY_UPDATE_SCHEMA=1 cargo test -p ferry committed_schema_is_current`.
#[test]
fn committed_schema_is_current() {
    let generated = json_schema();
    let path = committed_path();
    if std::env::var_os("FERRY_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&generated).expect("schema serializes") + "\n";
        std::fs::create_dir_all(path.parent().expect("schema dir")).expect("create schema dir");
        std::fs::write(&path, text).expect("write schema");
        return;
    }
    let committed: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null);
    assert!(
        committed == generated,
        "{} is missing or out of date with the configuration types; regenerate it with\n  \
         FERRY_UPDATE_SCHEMA=1 cargo test -p ferry committed_schema_is_current\nand commit it",
        path.display()
    );
}
