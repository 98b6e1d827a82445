//! The embedded broker core: a persistent single-node Kafka-compatible broker.
pub mod groups;
pub mod log;
