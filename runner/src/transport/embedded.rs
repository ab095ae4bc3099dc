//! The embedded broker: librdkafka's mock cluster, a Kafka-protocol broker hosted inside
//! this process and reachable over TCP by any Kafka client.

use std::ffi::{CStr, CString};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka_sys as rdsys;

use super::TransportError;

pub struct EmbeddedBroker {
    cluster: *mut rdsys::rd_kafka_mock_cluster_t,
    /// The client that owns the cluster's thread; it must outlive `cluster`.
    _owner: BaseProducer,
    bootstrap: String,
}

// SAFETY: librdkafka's mock-cluster functions hand their work to the cluster's own thread
// through a queue (rd_kafka_mock_cluster_op), so calling them from any thread is sound.
unsafe impl Send for EmbeddedBroker {}
unsafe impl Sync for EmbeddedBroker {}

impl EmbeddedBroker {
    /// Starts a broker with `brokers` nodes; topics are created with [`Self::create_topic`].
    pub fn start(brokers: i32) -> Result<Self, TransportError> {
        let owner: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .map_err(|e| TransportError::Broker(format!("cannot start the embedded broker: {e}")))?;
        // SAFETY: the client pointer is valid for the lifetime of `owner`, which we keep.
        let cluster = unsafe { rdsys::rd_kafka_mock_cluster_new(owner.client().native_ptr(), brokers) };
        if cluster.is_null() {
            return Err(TransportError::Broker("cannot start the embedded broker".into()));
        }
        // SAFETY: `cluster` is non-null; the returned string lives as long as the cluster.
        let bootstrap =
            unsafe { CStr::from_ptr(rdsys::rd_kafka_mock_cluster_bootstraps(cluster)) }.to_string_lossy().into_owned();
        // Consumers joining a group start at once instead of after the default 3 s delay.
        // SAFETY: `cluster` is non-null and owned by this value.
        unsafe { rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0) };
        Ok(EmbeddedBroker { cluster, _owner: owner, bootstrap })
    }

    /// The `host:port` list Kafka clients connect to.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn create_topic(&self, topic: &str, partitions: i32, replication: i32) -> Result<(), TransportError> {
        let name = CString::new(topic).map_err(|_| TransportError::Broker(format!("invalid topic name `{topic}`")))?;
        // SAFETY: valid cluster and NUL-terminated name.
        let err = unsafe { rdsys::rd_kafka_mock_topic_create(self.cluster, name.as_ptr(), partitions, replication) };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            || err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS
        {
            Ok(())
        } else {
            Err(TransportError::Broker(format!("cannot create topic `{topic}` on the embedded broker: {err:?}")))
        }
    }
}

impl EmbeddedBroker {
    /// Takes broker node 1 down (`false`) or brings it back (`true`): clients see connection
    /// failures exactly as with a real broker outage.
    pub fn set_up(&self, up: bool) -> Result<(), TransportError> {
        // SAFETY: valid cluster; broker ids of the mock cluster start at 1.
        let err = unsafe {
            if up {
                rdsys::rd_kafka_mock_broker_set_up(self.cluster, 1)
            } else {
                rdsys::rd_kafka_mock_broker_set_down(self.cluster, 1)
            }
        };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err(TransportError::Broker(format!("cannot change the embedded broker's state: {err:?}")))
        }
    }
}

impl EmbeddedBroker {
    /// Sets the broker's round-trip time: every request is answered this much later.
    pub fn set_rtt(&self, rtt: std::time::Duration) -> Result<(), TransportError> {
        let ms = i32::try_from(rtt.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: valid cluster; broker ids of the mock cluster start at 1.
        let err = unsafe { rdsys::rd_kafka_mock_broker_set_rtt(self.cluster, 1, ms) };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err(TransportError::Broker(format!("cannot change the embedded broker's round-trip time: {err:?}")))
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_mock_cluster_new and destroyed once.
        unsafe { rdsys::rd_kafka_mock_cluster_destroy(self.cluster) };
    }
}
