//! Helpers to read Ferry's CloudFormation templates (`infra/*.yaml`) as plain data.
//!
//! The templates are written in long form (`Fn::Sub`, `Ref` as mappings, no `!` tags) so
//! a plain YAML parser reads them; the assertions live in `tests/templates.rs`.
