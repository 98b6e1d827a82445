//! Topic-level configs the embedded broker honours, with Kafka's names, validation messages and
//! defaults taken from the broker config. Anything else is refused: a config that is accepted must
//! also be obeyed.
use std::collections::BTreeMap;

use super::log::LogConfig;
use crate::config::BrokerConfig;

/// DescribeConfigs' ConfigType values (DescribeConfigsResponse.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    Int = 3,
    Long = 5,
    List = 7,
}

/// The topic configs kgate honours, sorted by name.
pub const SUPPORTED: &[(&str, ConfigType)] = &[
    ("cleanup.policy", ConfigType::List),
    ("max.message.bytes", ConfigType::Int),
    ("retention.bytes", ConfigType::Long),
    ("retention.ms", ConfigType::Long),
    ("segment.bytes", ConfigType::Int),
    ("segment.ms", ConfigType::Long),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicConfigError {
    #[error(
        "Unknown topic config name: {name}. kgate's embedded broker supports: {}",
        supported_names()
    )]
    Unknown { name: String },
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
}

fn supported_names() -> String {
    SUPPORTED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

pub fn config_type(name: &str) -> Option<ConfigType> {
    SUPPORTED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The effective value of every supported config: `(name, value, set on the topic)`.
pub fn effective(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Vec<(&'static str, String, bool)> {
    SUPPORTED
        .iter()
        .map(|(name, _)| match overrides.get(*name) {
            Some(v) => (*name, v.clone(), true),
            None => (*name, broker_default(broker, name), false),
        })
        .collect()
}

fn broker_default(b: &BrokerConfig, name: &str) -> String {
    match name {
        "cleanup.policy" => "delete".into(),
        "max.message.bytes" => b.message_max_bytes.to_string(),
        "retention.bytes" => b.log_retention_bytes.to_string(),
        "retention.ms" => b.log_retention_ms.to_string(),
        "segment.bytes" => b.log_segment_bytes.to_string(),
        "segment.ms" => b.log_roll_ms.to_string(),
        _ => String::new(),
    }
}

/// Validates the overrides and builds the partition log settings they give.
pub fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Result<LogConfig, TopicConfigError> {
    let mut c = LogConfig {
        segment_bytes: broker.log_segment_bytes,
        segment_ms: broker.log_roll_ms,
        retention_ms: broker.log_retention_ms,
        retention_bytes: broker.log_retention_bytes,
        max_message_bytes: broker.message_max_bytes,
        ..LogConfig::default()
    };
    for (name, value) in overrides {
        let invalid = |reason: &str| TopicConfigError::InvalidValue {
            name: name.clone(),
            value: value.clone(),
            reason: reason.to_string(),
        };
        match name.as_str() {
            "cleanup.policy" => {
                let policies: Vec<&str> = value.split(',').map(str::trim).collect();
                if policies.contains(&"compact") {
                    return Err(invalid(
                        "log compaction is not supported by kgate's embedded broker; use cleanup.policy=delete",
                    ));
                }
                if policies != ["delete"] {
                    return Err(invalid("String must be one of: compact, delete"));
                }
            }
            "max.message.bytes" => {
                let v: i32 = value.parse().map_err(|_| invalid("Not a number of type INT"))?;
                if v < 0 {
                    return Err(invalid("Value must be at least 0"));
                }
                c.max_message_bytes = v as usize;
            }
            "retention.bytes" => c.retention_bytes = value.parse().map_err(|_| invalid("Not a number of type LONG"))?,
            "retention.ms" => {
                let v: i64 = value.parse().map_err(|_| invalid("Not a number of type LONG"))?;
                if v < -1 {
                    return Err(invalid("Value must be at least -1"));
                }
                c.retention_ms = v;
            }
            "segment.bytes" => {
                let v: i32 = value.parse().map_err(|_| invalid("Not a number of type INT"))?;
                if v < 14 {
                    return Err(invalid("Value must be at least 14"));
                }
                c.segment_bytes = v as u64;
            }
            "segment.ms" => {
                let v: i64 = value.parse().map_err(|_| invalid("Not a number of type LONG"))?;
                if v < 1 {
                    return Err(invalid("Value must be at least 1"));
                }
                c.segment_ms = v;
            }
            other => {
                return Err(TopicConfigError::Unknown {
                    name: other.to_string(),
                })
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn overrides_reach_the_log_config() {
        let c = log_config(
            &BrokerConfig::default(),
            &cfg(&[("retention.ms", "1000"), ("segment.bytes", "4096")]),
        )
        .unwrap();
        assert_eq!((c.retention_ms, c.segment_bytes), (1000, 4096));
        assert_eq!(c.retention_bytes, -1);
    }

    #[test]
    fn kafka_messages_for_bad_configs() {
        let b = BrokerConfig::default();
        let e = log_config(&b, &cfg(&[("retention.ms", "soon")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid value soon for configuration retention.ms: Not a number of type LONG"
        );
        let e = log_config(&b, &cfg(&[("min.cleanable.dirty.ratio", "0.5")])).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Unknown topic config name: min.cleanable.dirty.ratio."));
        assert!(log_config(&b, &cfg(&[("cleanup.policy", "compact")])).is_err());
        assert!(log_config(&b, &cfg(&[("segment.bytes", "13")])).is_err());
    }

    #[test]
    fn effective_marks_overrides() {
        let e = effective(&BrokerConfig::default(), &cfg(&[("retention.ms", "5")]));
        assert!(e.contains(&("retention.ms", "5".to_string(), true)));
        assert!(e.contains(&("cleanup.policy", "delete".to_string(), false)));
    }
}
