//! End-to-end tests live in `tests/e2e/` (pytest driving the real `gregor` binary with kcat,
//! confluent-kafka and kafka-python). This crate exists so the workspace layout stays fixed.
