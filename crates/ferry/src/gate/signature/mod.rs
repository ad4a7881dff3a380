//! Signature gates: cosign (key-based) and Notation (X.509) verification.
