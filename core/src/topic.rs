//! Topic names and their validity rules, as Kafka defines them.

/// Longest legal topic name (Kafka: 249, so that `<topic>-<partition>` fits a 255-byte file name).
pub const TOPIC_NAME_LEN_MAX: usize = 249;

/// Why a topic name is not legal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name cannot be \".\" or \"..\"")]
    Dots,
    #[error("topic name is longer than {TOPIC_NAME_LEN_MAX} characters")]
    TooLong,
    #[error("topic name {0:?} contains characters other than ASCII alphanumerics, '.', '_' and '-'")]
    BadChar(String),
}

/// Checks a topic name against Kafka's rules (`[a-zA-Z0-9._-]{1,249}`, not `.` or `..`).
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > TOPIC_NAME_LEN_MAX {
        return Err(TopicNameError::TooLong);
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err(TopicNameError::BadChar(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_topic_name("quickstart-events").is_ok());
        assert!(validate_topic_name("a.b_C-9").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::Dots));
        assert!(matches!(validate_topic_name("a b"), Err(TopicNameError::BadChar(_))));
        assert!(matches!(validate_topic_name("ü"), Err(TopicNameError::BadChar(_))));
        assert_eq!(validate_topic_name(&"x".repeat(250)), Err(TopicNameError::TooLong));
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }
}
