//! What the relay tests share: a relay pipeline from a few `[relay]` settings, and outbox rows
//! written as an application writes them (one transaction, or retried through outages).

use std::path::Path;
use std::time::Duration;

use runner::config::{load_text, LoadOptions, Overrides, Pipeline};
use runner::event::Event;
use runner::store::{outbox, Store, StoreError};

/// The text of an outbox-relay pipeline file whose `[relay]` section holds `settings`.
pub fn relay_toml(settings: &str) -> String {
    format!("[service]\nname = \"outbox-relay\"\n[relay]\n{settings}\n")
}

/// The relay pipeline of [`relay_toml`] on `database_url` and `brokers` (a list, or `embedded`).
pub fn relay_pipeline(settings: &str, database_url: &str, brokers: &str) -> Pipeline {
    let options = LoadOptions {
        overrides: Overrides { brokers: Some(brokers.into()), database_url: Some(database_url.into()), listen: None },
        ..LoadOptions::default()
    };
    load_text(Path::new("relay.toml"), &relay_toml(settings), &options).unwrap_or_else(|d| panic!("{d}")).pipeline
}

/// Writes `events` to the outbox in one transaction.
pub async fn write_events(store: &Store, events: &[Event]) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    for event in events {
        outbox::insert(&mut tx, event);
    }
    tx.commit().await?;
    Ok(())
}

/// Writes `event` in its own transaction, retrying through outages until it is there (a commit
/// that landed before its connection died counts: the id tells).
pub async fn write_event_retrying(store: &Store, event: &Event) {
    while let Err(e) = write_events(store, std::slice::from_ref(event)).await {
        if row_exists(store, &event.id).await {
            return;
        }
        eprintln!("writing {}: {e}; retrying", event.id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn row_exists(store: &Store, id: &str) -> bool {
    sqlx::query("SELECT 1 FROM outbox WHERE id = CAST($1 AS uuid)")
        .bind(id)
        .fetch_optional(store.pool())
        .await
        .is_ok_and(|row| row.is_some())
}
