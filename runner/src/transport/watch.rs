//! Notices within a quarter of a second that every bootstrap address of a broker refuses
//! connections, and pauses every consumer of it there and then, from outside its consume loop.
//!
//! Why not wait for librdkafka's "all brokers down": it reaches a consumer only through its
//! own `recv`, and a consume loop busy with one message (a handler retrying a publish while
//! the broker is away) does not call it for seconds. A broker that restarts empty within that
//! time (tansu on memory storage, any broker that lost its disk) is then fetched from by topic
//! ids it forgot; it answers with a zero topic id and a leader hint, and librdkafka 2.12 looks
//! the topic up by a null name and crashes the process. A paused partition is never fetched;
//! the consume loop then recovers (see [`super::Consumer::recover`]): topics recreated,
//! metadata refreshed, back to the committed offsets.
//!
//! The probe is a TCP connect to each bootstrap address, nothing else: cheap, and refused at
//! once when the broker process is gone. Only a refusal by every address counts (a timeout
//! is not certain enough to rewind every consumer for). Only brokers named by address
//! are watched: the embedded broker keeps its state when it goes down.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::consumer::Consumer as _;

use super::guard::ConsumerClient;

/// How often the bootstrap addresses are probed while consumers are registered.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// How long one connect may take; a connect that takes longer proves nothing either way.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The consumers of one broker and the task probing it (started with the first consumer).
pub(super) struct BrokerWatch {
    addresses: Vec<String>,
    consumers: Mutex<Vec<Weak<ConsumerClient>>>,
    probing: OnceLock<()>,
}

impl BrokerWatch {
    /// A watch of the `host:port` addresses in a `bootstrap.servers` list.
    pub(super) fn new(bootstrap: &str) -> Arc<BrokerWatch> {
        let addresses = bootstrap
            .split(',')
            .map(|a| a.trim())
            .map(|a| a.split_once("://").map_or(a, |(_, rest)| rest))
            .filter(|a| !a.is_empty())
            .map(with_port)
            .collect();
        Arc::new(BrokerWatch { addresses, consumers: Mutex::default(), probing: OnceLock::new() })
    }

    /// Watches `consumer` until it is dropped; starts probing on the first one (outside a
    /// Tokio runtime nothing is probed).
    pub(super) fn register(self: &Arc<Self>, consumer: &Arc<ConsumerClient>) {
        self.lock().push(Arc::downgrade(consumer));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.probing.get_or_init(|| {
                runtime.spawn(probe(Arc::downgrade(self)));
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<ConsumerClient>>> {
        // Nothing panics while the lock is held; take the list back if that ever changes.
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The consumers still alive (the dropped ones are forgotten).
    fn live(&self) -> Vec<Arc<ConsumerClient>> {
        let mut consumers = self.lock();
        consumers.retain(|c| c.strong_count() > 0);
        consumers.iter().filter_map(Weak::upgrade).collect()
    }

    /// Whether every bootstrap address refuses connections: the broker process is gone.
    /// Only a refusal counts: a connect that times out (a busy broker's full listen backlog,
    /// a slow network) or a name that does not resolve says nothing for certain, and pausing
    /// on it would rewind every consumer for nothing. With no address nothing is refused.
    async fn all_refuse(&self) -> bool {
        if self.addresses.is_empty() {
            return false;
        }
        for address in &self.addresses {
            let connect = tokio::net::TcpStream::connect(address.as_str());
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                _ => return false,
            }
        }
        true
    }
}

/// `host:port`, with Kafka's default port when the address names none (as librdkafka does).
fn with_port(address: &str) -> String {
    let address = address.trim_end_matches(':');
    let has_port = match address.rsplit_once(':') {
        // `[::1]:9092` has one; `[::1]` and `::1` do not.
        Some((host, port)) => {
            !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        address.to_string()
    } else {
        format!("{address}:9092")
    }
}

/// Probes until the watch is dropped (every [`super::Broker`] holding it is gone). On the
/// change to every address refusing, every live consumer is marked lost and paused.
async fn probe(watch: Weak<BrokerWatch>) {
    let mut was_refused = false;
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let Some(watch) = watch.upgrade() else { return };
        let consumers = watch.live();
        if consumers.is_empty() {
            continue;
        }
        let refused = watch.all_refuse().await;
        if refused && !was_refused {
            tracing::warn!(
                brokers = watch.addresses.join(","),
                consumers = consumers.len(),
                "no bootstrap address accepts connections; every consumer paused until the broker is back"
            );
            for consumer in consumers {
                consumer.context().lost_by_probe();
                if let Ok(assignment) = consumer.assignment() {
                    let _ = consumer.pause(&assignment);
                }
            }
        }
        was_refused = refused;
    }
}

#[cfg(test)]
mod tests {
    use super::with_port;

    #[test]
    fn addresses_get_kafkas_default_port_when_they_name_none() {
        for (given, want) in [
            ("127.0.0.1:9093", "127.0.0.1:9093"),
            ("kafka", "kafka:9092"),
            ("kafka:", "kafka:9092"),
            ("[::1]:9093", "[::1]:9093"),
            ("[::1]", "[::1]:9092"),
        ] {
            assert_eq!(with_port(given), want, "{given}");
        }
    }
}
