//! Kafka error codes, as sent in responses: the one table in `gregor_core::errors`.

pub use gregor_core::errors::*;
