//! The inbox: which messages a consumer has handled and what it replied, recorded in the
//! same transaction as the handler's effect so a redelivered message has no second effect.

use sqlx::Row;

use super::{StoreError, Tx};

/// The reply recorded for a message, when the consumer has handled it before.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub reply_type: Option<String>,
    pub reply_payload: Option<String>,
}

/// The reply recorded for `message_id`, from what the transaction holds or read ahead, or
/// else from the table.
pub async fn find(tx: &mut Tx, consumer: &str, message_id: &str) -> Result<Option<Recorded>, StoreError> {
    if let Some(reply) = tx.held_inbox(consumer, message_id) {
        let (reply_type, reply_payload) = reply.unzip();
        return Ok(Some(Recorded { reply_type, reply_payload }));
    }
    if let Some(known) = tx.known().inbox(consumer, message_id) {
        return Ok(known);
    }
    let row = sqlx::query("SELECT reply_type, reply_payload FROM inbox WHERE consumer = $1 AND message_id = $2")
        .bind(consumer)
        .bind(message_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(row) => Some(Recorded { reply_type: row.try_get(0)?, reply_payload: row.try_get(1)? }),
        None => None,
    })
}

/// Records a handled message and its reply, sent with the transaction's commit.
pub fn record(tx: &mut Tx, consumer: &str, message_id: &str, reply: Option<(&str, &str)>, now_ms: i64) {
    tx.hold_inbox(consumer, message_id, reply, now_ms);
}
