//! Replication configuration (see issue #3).
