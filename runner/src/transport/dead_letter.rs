//! Dead letters: what a consumer sends to `<topic>.dlq` when a message cannot be handled,
//! with the original key, payload and headers plus headers saying where it came from and
//! why it failed. dlq-admin reads these; the saga reads its step requests' dead letters.

use std::fmt;

/// Headers added to a dead letter (next to the original headers).
pub const ORIGINAL_TOPIC: &str = "dlq_original_topic";
pub const ORIGINAL_PARTITION: &str = "dlq_original_partition";
pub const ORIGINAL_OFFSET: &str = "dlq_original_offset";
/// The original record's timestamp, Unix milliseconds.
pub const ORIGINAL_TIMESTAMP: &str = "dlq_original_timestamp";
pub const CONSUMER_GROUP: &str = "dlq_consumer_group";
/// One of [`ErrorKind`]'s names.
pub const ERROR_KIND: &str = "dlq_error_kind";
pub const ERROR_MESSAGE: &str = "dlq_error_message";
/// How many times the handler was tried.
pub const ATTEMPTS: &str = "dlq_attempts";
/// RFC 3339 times of the first and the last failure.
pub const FIRST_FAILURE_AT: &str = "dlq_first_failure_at";
pub const LAST_FAILURE_AT: &str = "dlq_last_failure_at";
/// How many times dlq-admin replayed this message; kept when it dead-letters again.
pub const REPLAY_COUNT: &str = "dlq_replay_count";

/// The default dead-letter topic of a topic.
pub fn topic_for(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Why a message could not be handled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not a CloudEvents record with a JSON payload; never retried.
    Undecodable,
    /// The payload does not match its event type's schema; never retried.
    SchemaInvalid,
    /// The handler refused the message as wrong; never retried.
    Rejected,
    /// The handler failed in a way that may pass (a downstream outage); retried, then dead-lettered.
    HandlerFailed,
    /// The service's own database or broker is unavailable; retried until it answers.
    Unavailable,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Undecodable,
        ErrorKind::SchemaInvalid,
        ErrorKind::Rejected,
        ErrorKind::HandlerFailed,
        ErrorKind::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Undecodable => "undecodable",
            ErrorKind::SchemaInvalid => "schema_invalid",
            ErrorKind::Rejected => "rejected",
            ErrorKind::HandlerFailed => "handler_failed",
            ErrorKind::Unavailable => "unavailable",
        }
    }

    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
