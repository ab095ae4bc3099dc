//! One dead letter as dlq-admin keeps it: the row of `dead_letters` ([`Entry`]) and of
//! `dead_letter_history` ([`HistoryLine`]), how an entry is built from a dead-letter record,
//! whether it may be replayed, and how the API shows it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::transport::dead_letter::{self, ErrorKind};
use crate::transport::RawMessage;

/// The error kind of a dead letter without a (known) `dlq_error_kind` header.
pub const UNKNOWN_KIND: &str = "unknown";
/// Characters of the payload shown in lists.
const PREVIEW_CHARS: usize = 200;

/// One dead letter: a row of `dead_letters`, read by column name.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub dlq_topic: String,
    pub dlq_partition: i64,
    pub dlq_offset: i64,
    pub dead_lettered_at_ms: i64,
    pub original_topic: Option<String>,
    pub original_partition: Option<i64>,
    pub original_offset: Option<i64>,
    pub original_timestamp_ms: Option<i64>,
    pub consumer_group: Option<String>,
    pub error_kind: String,
    pub error_message: Option<String>,
    pub attempts: Option<i64>,
    pub first_failure_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub ce_id: Option<String>,
    pub ce_type: Option<String>,
    pub ce_source: Option<String>,
    pub ce_time: Option<String>,
    pub traceparent: Option<String>,
    pub content_type: Option<String>,
    #[sqlx(rename = "message_key")]
    pub key: Option<String>,
    pub key_hex: Option<String>,
    pub payload: Option<String>,
    pub payload_hex: Option<String>,
    /// JSON array of `{name, value}`, in record order.
    pub headers: String,
    pub state: String,
    pub replay_count: i64,
    pub received_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One header of a dead-letter record, as kept in [`Entry::headers`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeaderPair {
    pub name: String,
    pub value: String,
}

impl Entry {
    /// A new entry for a record read from a dead-letter topic at `now`.
    pub fn from_raw(raw: &RawMessage, now: i64) -> Entry {
        let header = |name: &str| raw.header(name).map(clean);
        let number = |name: &str| header(name).and_then(|v| v.trim().parse::<i64>().ok());
        let (key, key_hex) = text_and_hex(raw.key.as_deref());
        let (payload, payload_hex) = text_and_hex(raw.payload.as_deref());
        let headers: Vec<HeaderPair> = raw
            .headers
            .iter()
            .map(|(name, value)| HeaderPair { name: clean(name.clone()), value: clean_bytes(value) })
            .collect();
        let error_kind = header(dead_letter::ERROR_KIND)
            .and_then(|k| ErrorKind::parse(k.trim()))
            .map_or(UNKNOWN_KIND, ErrorKind::as_str)
            .to_string();
        Entry {
            id: 0,
            dlq_topic: raw.topic.clone(),
            dlq_partition: i64::from(raw.partition),
            dlq_offset: raw.offset,
            dead_lettered_at_ms: raw.timestamp_ms.filter(|t| *t > 0).unwrap_or(now),
            original_topic: header(dead_letter::ORIGINAL_TOPIC).filter(|t| !t.is_empty()),
            original_partition: number(dead_letter::ORIGINAL_PARTITION),
            original_offset: number(dead_letter::ORIGINAL_OFFSET),
            original_timestamp_ms: number(dead_letter::ORIGINAL_TIMESTAMP),
            consumer_group: header(dead_letter::CONSUMER_GROUP),
            error_kind,
            error_message: header(dead_letter::ERROR_MESSAGE),
            attempts: number(dead_letter::ATTEMPTS),
            first_failure_at: header(dead_letter::FIRST_FAILURE_AT),
            last_failure_at: header(dead_letter::LAST_FAILURE_AT),
            ce_id: header("ce_id"),
            ce_type: header("ce_type"),
            ce_source: header("ce_source"),
            ce_time: header("ce_time"),
            traceparent: header("traceparent"),
            content_type: header("content-type"),
            key,
            key_hex,
            payload,
            payload_hex,
            headers: serde_json::to_string(&headers).unwrap_or_else(|_| "[]".into()),
            state: "new".into(),
            replay_count: number(dead_letter::REPLAY_COUNT).unwrap_or(0).max(0),
            received_at_ms: now,
            updated_at_ms: now,
        }
    }

    /// The event type the payload is checked against: `ce_type`, else the original topic.
    pub fn event_type(&self) -> Option<&str> {
        self.ce_type.as_deref().or(self.original_topic.as_deref())
    }

    /// The record's key as it was sent.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        exact_bytes(self.key.as_deref(), self.key_hex.as_deref())
    }

    /// The record's payload as it was sent.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        exact_bytes(self.payload.as_deref(), self.payload_hex.as_deref())
    }

    /// The record's headers, in record order.
    pub fn header_pairs(&self) -> Vec<HeaderPair> {
        serde_json::from_str(&self.headers).unwrap_or_default()
    }

    /// Why this entry may not be replayed, if it may not.
    pub fn refusal(&self, max_replays: u32) -> Option<String> {
        let id = self.id;
        if self.state == "discarded" {
            return Some(format!("entry {id} was discarded; discarded entries are not replayed"));
        }
        if self.replay_count >= i64::from(max_replays) {
            return Some(format!(
                "entry {id} was already replayed {} time(s), the limit (max_replays = {max_replays}); fix the cause and send a new message, or discard it",
                self.replay_count
            ));
        }
        if self.original_topic.is_none() {
            return Some(format!(
                "entry {id} does not name its original topic (no {} header); it cannot be replayed",
                dead_letter::ORIGINAL_TOPIC
            ));
        }
        None
    }

    /// The entry as lists show it.
    pub fn summary(&self) -> Value {
        let preview = self.payload.as_deref().map(|p| {
            if p.chars().count() > PREVIEW_CHARS {
                format!("{}…", p.chars().take(PREVIEW_CHARS).collect::<String>())
            } else {
                p.to_string()
            }
        });
        json!({
            "id": self.id,
            "topic": self.dlq_topic,
            "partition": self.dlq_partition,
            "offset": self.dlq_offset,
            "originalTopic": self.original_topic,
            "eventType": self.event_type(),
            "key": self.key,
            "errorKind": self.error_kind,
            "errorMessage": self.error_message,
            "attempts": self.attempts,
            "state": self.state,
            "replayCount": self.replay_count,
            "deadLetteredAtMs": self.dead_lettered_at_ms,
            "deadLetteredAt": rfc3339(self.dead_lettered_at_ms),
            "payloadPreview": preview,
        })
    }

    /// Everything known about the entry, with its history.
    pub fn detail(&self, history: &[HistoryLine], max_replays: u32) -> Value {
        let (payload, encoding) = match (&self.payload, &self.payload_hex) {
            (None, _) => (Value::Null, "none"),
            (Some(text), Some(_)) => (Value::String(text.clone()), "binary"),
            (Some(text), None) => match serde_json::from_str::<Value>(text) {
                Ok(value) => (value, "json"),
                Err(_) => (Value::String(text.clone()), "text"),
            },
        };
        let refusal = self.refusal(max_replays);
        let mut detail = self.summary();
        let extra = json!({
            "payload": payload,
            "payloadEncoding": encoding,
            "payloadHex": self.payload_hex,
            "keyHex": self.key_hex,
            "original": {
                "topic": self.original_topic,
                "partition": self.original_partition,
                "offset": self.original_offset,
                "timestampMs": self.original_timestamp_ms,
                "timestamp": self.original_timestamp_ms.map(rfc3339),
            },
            "consumerGroup": self.consumer_group,
            "firstFailureAt": self.first_failure_at,
            "lastFailureAt": self.last_failure_at,
            "cloudEvent": {
                "id": self.ce_id,
                "type": self.ce_type,
                "source": self.ce_source,
                "time": self.ce_time,
                "contentType": self.content_type,
            },
            "traceparent": self.traceparent,
            "headers": self.header_pairs(),
            "receivedAtMs": self.received_at_ms,
            "updatedAtMs": self.updated_at_ms,
            "replay": {
                "allowed": refusal.is_none(),
                "refusal": refusal,
                "maxReplays": max_replays,
                "replaysLeft": (i64::from(max_replays) - self.replay_count).max(0),
            },
            "history": history.iter().map(HistoryLine::view).collect::<Vec<_>>(),
        });
        if let (Some(detail), Value::Object(extra)) = (detail.as_object_mut(), extra) {
            detail.remove("payloadPreview");
            detail.extend(extra);
        }
        detail
    }

    /// What a bulk replay sends (or would send) for this entry.
    pub fn planned(&self) -> Value {
        json!({
            "id": self.id,
            "topic": self.dlq_topic,
            "originalTopic": self.original_topic,
            "key": self.key,
            "eventType": self.event_type(),
            "replayCount": self.replay_count + 1,
        })
    }
}

/// One line of an entry's history: a row of `dead_letter_history`, read by column name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryLine {
    /// `received`, `replayed` or `discarded`.
    pub action: String,
    pub actor: String,
    pub detail: Option<String>,
    pub at_ms: i64,
}

impl HistoryLine {
    /// The line as the API shows it.
    fn view(&self) -> Value {
        json!({
            "action": self.action,
            "actor": self.actor,
            "detail": self.detail,
            "atMs": self.at_ms,
            "at": rfc3339(self.at_ms),
        })
    }
}

/// Text as PostgreSQL can store it (no NUL characters).
fn clean(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

fn clean_bytes(bytes: &[u8]) -> String {
    clean(String::from_utf8_lossy(bytes).into_owned())
}

/// Bytes as text, plus their hex form when the text is not exact (not UTF-8, or holds NUL).
fn text_and_hex(bytes: Option<&[u8]>) -> (Option<String>, Option<String>) {
    match bytes {
        None => (None, None),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => (Some(text.to_string()), None),
            _ => (Some(clean_bytes(bytes)), Some(to_hex(bytes))),
        },
    }
}

/// The bytes that [`text_and_hex`] stored: the hex form when there is one, else the text.
fn exact_bytes(text: Option<&str>, hex: Option<&str>) -> Option<Vec<u8>> {
    match (hex, text) {
        (Some(hex), _) => from_hex(hex),
        (None, Some(text)) => Some(text.as_bytes().to_vec()),
        (None, None) => None,
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Unix milliseconds as an RFC 3339 UTC time.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0xff, b'a'];
        assert_eq!(to_hex(&bytes), "00017fff61");
        assert_eq!(from_hex("00017fff61").unwrap(), bytes);
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn text_keeps_exact_bytes_only_when_not_text() {
        assert_eq!(text_and_hex(Some(b"{\"a\":1}")), (Some("{\"a\":1}".into()), None));
        assert_eq!(text_and_hex(Some(b"a\0b")), (Some("a\u{FFFD}b".into()), Some("610062".into())));
        let (text, hex) = text_and_hex(Some(&[0xff, b'x']));
        assert_eq!((text.unwrap(), hex.unwrap()), ("\u{FFFD}x".to_string(), "ff78".to_string()));
        assert_eq!(text_and_hex(None), (None, None));
    }

    #[test]
    fn stored_bytes_come_back_exactly() {
        for bytes in [&b"{\"a\":1}"[..], b"a\0b", &[0xff, b'x'], b""] {
            let (text, hex) = text_and_hex(Some(bytes));
            assert_eq!(exact_bytes(text.as_deref(), hex.as_deref()).as_deref(), Some(bytes));
        }
        assert_eq!(exact_bytes(None, None), None);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn refusals_say_why() {
        let entry = Entry { id: 7, original_topic: Some("t".into()), state: "new".into(), ..Entry::default() };
        assert_eq!(entry.refusal(3), None);
        let limit = Entry { replay_count: 3, ..entry.clone() };
        assert!(limit.refusal(3).unwrap().contains("already replayed 3 time(s)"));
        let discarded = Entry { state: "discarded".into(), ..entry.clone() };
        assert!(discarded.refusal(3).unwrap().contains("discarded"));
        let nowhere = Entry { original_topic: None, ..entry };
        assert!(nowhere.refusal(3).unwrap().contains("original topic"));
    }
}
