//! The compiled, typed pipeline: every name resolved, every duration parsed, every handler
//! built. Each section's type belongs to the component that runs it; this file assembles
//! them, and derives every topic list from one place ([`Pipeline::topic_uses`]).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::admin::AdminConfig;
use crate::chaos::ServiceCatalog;
use crate::diagnostic::KeyPath;
use crate::saga::SagaConfig;
use crate::services::analytics::AnalyticsConfig;
use crate::services::chaos_api::ChaosApiConfig;
use crate::services::dlq_admin::DlqAdminConfig;
use crate::services::order_api::OrderApiConfig;
use crate::services::relay::RelayConfig;
use crate::services::worker::ConsumerConfig;
use crate::store::StoreConfig;
use crate::traces::TelemetryConfig;
use crate::transport::{topics_where, BrokerConfig, Brokers, TopicRole, TopicUse};

/// A topic a pipeline needs on the broker.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BrokerTopic {
    pub name: String,
    /// Compacted (the latest record per key is kept), not deleted by age.
    pub compacted: bool,
}

/// A service, ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub service: String,
    /// Where the service listens when run alone; `runner up` serves every service on one address.
    pub listen: SocketAddr,
    pub shutdown_grace: Duration,
    pub broker: BrokerConfig,
    pub store: StoreConfig,
    pub order_api: Option<OrderApiConfig>,
    pub relay: Option<RelayConfig>,
    pub consumers: Vec<ConsumerConfig>,
    pub saga: Option<SagaConfig>,
    pub dlq_admin: Option<DlqAdminConfig>,
    /// Where the event schemas are, resolved against the pipeline file; `None`: not validated.
    pub schemas_dir: Option<std::path::PathBuf>,
    /// The event schemas, read by the loader from `schemas_dir`.
    pub schemas: std::sync::Arc<crate::schemas::SchemaRegistry>,
    pub admin: AdminConfig,
    /// `stable` or `canary`: the `variant` label of this service's metrics.
    pub variant: String,
    /// Whether chaos is on for this service, and the rules of its file.
    pub chaos: crate::chaos::ChaosSettings,
    pub chaos_api: Option<ChaosApiConfig>,
    pub gameday: Option<crate::services::gameday::GamedayConfig>,
    /// Service-level objectives declared in this file.
    pub slo: Vec<crate::slo::Objective>,
    pub analytics: Option<AnalyticsConfig>,
    pub telemetry: TelemetryConfig,
}

impl Pipeline {
    /// Every topic this pipeline names: what it produces, handles and observes, with the
    /// key naming each. The one list every other topic list is derived from.
    pub fn topic_uses(&self) -> Vec<TopicUse> {
        // Destructured without `..`: a new section does not compile until it says its topics.
        let Pipeline {
            service: _,
            listen: _,
            shutdown_grace: _,
            broker: _,
            store: _,
            order_api,
            relay: _, // publishes whatever the outbox holds, to the topic its row names
            consumers,
            saga,
            dlq_admin: _, // follows dead-letter topics by pattern, whatever exists
            schemas_dir: _,
            schemas: _,
            admin: _,
            variant: _,
            chaos: _, // its control topics belong to every runner, see `runtime`
            chaos_api: _,
            gameday: _, // sends orders over HTTP and faults through chaos-svc
            slo: _,
            analytics,
            telemetry: _,
        } = self;
        let mut uses = Vec::new();
        if let Some(api) = order_api {
            let at = KeyPath::section("order_api").key("created_event");
            uses.push(TopicUse::typed(TopicRole::Produces, &api.created_event, at));
        }
        for (i, consumer) in consumers.iter().enumerate() {
            uses.extend(consumer.topic_uses(&KeyPath::section("consumers").index(i)));
        }
        uses.extend(saga.iter().flat_map(SagaConfig::topic_uses));
        uses.extend(analytics.iter().flat_map(AnalyticsConfig::topic_uses));
        uses
    }

    /// What this service consists of, as chaos rules and canary changes may name it.
    pub fn catalog(&self) -> ServiceCatalog {
        let mut handlers: BTreeSet<String> = BTreeSet::new();
        for consumer in &self.consumers {
            handlers.insert(consumer.name.clone());
            handlers.insert(consumer.handler.name().to_string());
        }
        if let Some(saga) = &self.saga {
            // The orchestrator's consumer: handler `saga`, consumer `saga-<definition>`.
            handlers.insert("saga".to_string());
            handlers.insert(format!("saga-{}", saga.definition.name));
        }
        ServiceCatalog {
            service: self.service.clone(),
            handlers,
            topics: self.topic_uses().into_iter().map(|u| u.topic).collect(),
            canary_steps: self.saga.iter().filter_map(|s| s.canary.as_ref()).map(|c| c.step.clone()).collect(),
            hosts_broker: self.broker.brokers == Brokers::Embedded,
        }
    }

    /// Every topic this pipeline needs on the broker, as it creates them at start: what it
    /// produces and consumes, the chaos injections feed, and the compacted chaos control topic.
    pub fn broker_topics(&self) -> Vec<BrokerTopic> {
        let mut names: BTreeSet<String> = self.produced_topics().into_iter().chain(self.consumed_topics()).collect();
        names.insert(crate::chaos::INJECTIONS_TOPIC.to_string());
        let mut topics: Vec<BrokerTopic> =
            names.into_iter().map(|name| BrokerTopic { name, compacted: false }).collect();
        topics.push(BrokerTopic { name: crate::chaos::CONTROL_TOPIC.to_string(), compacted: true });
        topics
    }

    /// Every topic this pipeline produces to.
    pub fn produced_topics(&self) -> Vec<String> {
        topics_where(&self.topic_uses(), |u| u.role == TopicRole::Produces)
    }

    /// Every topic this pipeline consumes, to act on or to observe.
    pub fn consumed_topics(&self) -> Vec<String> {
        topics_where(&self.topic_uses(), TopicUse::consumes)
    }

    /// The topics this pipeline consumes to act on (consumers, the saga), not only to observe.
    pub fn handled_topics(&self) -> Vec<String> {
        topics_where(&self.topic_uses(), |u| u.role == TopicRole::Handles)
    }

    /// Every event type this pipeline writes or reads (what needs a schema).
    pub fn event_types(&self) -> BTreeSet<String> {
        self.topic_uses().into_iter().filter_map(|u| u.event_type).collect()
    }

    /// The first key of the file that names `event_type` (the root when only a default names it).
    pub fn where_named(&self, event_type: &str) -> KeyPath {
        let uses = self.topic_uses();
        let found = uses.iter().find(|u| u.event_type.as_deref() == Some(event_type) && u.topic == event_type);
        found
            .or_else(|| uses.iter().find(|u| u.event_type.as_deref() == Some(event_type)))
            .map_or_else(KeyPath::root, |u| u.at.clone())
    }

    /// Consumer groups and the topics each reads (for the lag monitor).
    pub fn consumer_groups(&self) -> Vec<(String, Vec<String>)> {
        let uses = self.topic_uses();
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for u in uses.iter().filter(|u| u.consumes()) {
            let Some(group) = &u.group else { continue };
            match groups.iter_mut().find(|(g, _)| g == group) {
                Some((_, topics)) if topics.contains(&u.topic) => {}
                Some((_, topics)) => topics.push(u.topic.clone()),
                None => groups.push((group.clone(), vec![u.topic.clone()])),
            }
        }
        groups
    }
}
