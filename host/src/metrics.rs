//! What the host did, kept for the `GET /metrics` page in the Prometheus
//! (OpenMetrics) text format. Counters and histograms are kept as the work
//! happens (tsuru's requests in the API, plugin calls in the runtime, loads
//! and swaps in the deployer, connections at the listener); what is a state
//! rather than a count (instances in use, the ledger's size) is handed in
//! when the page is written.
//!
//! A leaf: whoever records is handed the host's one [`Metrics`], built by
//! `Host::start`, and names what it records in plain label values. Every
//! label value is bounded: a service id the host serves (or `unknown`), an
//! action of tsuru's API, a status code, a stop reason.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The label value for a request whose service the host does not serve
/// (a wrong username, a removed service): never the name the client sent.
pub const UNKNOWN_SERVICE: &str = "unknown";

/// The status counted as busy: a service or the host ran as many plugin
/// calls as it may.
const BUSY_STATUS: u16 = 503;

/// What a service is now, read when the page is written.
#[derive(Debug, Clone, Copy)]
pub struct ServiceGauges<'a> {
    pub service: &'a str,
    /// Plugin calls running now.
    pub in_use: usize,
    /// Service instances the ledger holds.
    pub ledger_instances: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    service: String,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    action: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StopLabels {
    service: String,
    reason: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Whole requests: 0.5 ms to about 16 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The phases of a plugin call: 50 µs to about 6.5 s.
fn phase_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

/// The host's metrics, one set per host.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<ActionLabels>,
    instantiate_seconds: Histograms<ServiceLabels>,
    call_seconds: Histograms<ServiceLabels>,
    queue_wait_seconds: Histograms<ServiceLabels>,
    stops: Family<StopLabels, Counter>,
    busy: Family<ServiceLabels, Counter>,
    swaps: Family<ServiceLabels, Counter>,
    failed_loads: Family<ServiceLabels, Counter>,
    in_use: Family<ServiceLabels, Gauge>,
    ledger_instances: Family<ServiceLabels, Gauge>,
    connections_open: Gauge,
    connections_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("orizuru");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests from tsuru, by service, action and the status answered",
            requests.clone(),
        );
        let request_seconds = Histograms::new_with_constructor(request_buckets as fn() -> _);
        registry.register_with_unit(
            "request_duration",
            "Time to answer a request from tsuru, from its first byte read to its answer",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let instantiate_seconds = Histograms::new_with_constructor(phase_buckets as fn() -> _);
        registry.register_with_unit(
            "plugin_instantiate_duration",
            "Time to make a fresh sandbox and instantiate the plugin in it, per call",
            Unit::Seconds,
            instantiate_seconds.clone(),
        );
        let call_seconds = Histograms::new_with_constructor(phase_buckets as fn() -> _);
        registry.register_with_unit(
            "plugin_call_duration",
            "Time the plugin's own code took to answer, per call",
            Unit::Seconds,
            call_seconds.clone(),
        );
        let queue_wait_seconds = Histograms::new_with_constructor(phase_buckets as fn() -> _);
        registry.register_with_unit(
            "queue_wait_duration",
            "Time calls waited for a free place under their service's or the host's max_concurrent_calls, for each call that had to wait (queue_wait_ms bounds it)",
            Unit::Seconds,
            queue_wait_seconds.clone(),
        );
        let stops = Family::default();
        registry.register(
            "plugin_stops",
            "Plugin calls the host stopped, by reason: trap, deadline, memory, busy, contract, host",
            stops.clone(),
        );
        let busy = Family::default();
        registry.register(
            "busy",
            "Requests answered 503 because the service or the host ran as many plugin calls as it may",
            busy.clone(),
        );
        let swaps = Family::default();
        registry.register(
            "plugin_swaps",
            "Times a new plugin version (or an older one, by rollback) replaced the serving one",
            swaps.clone(),
        );
        let failed_loads = Family::default();
        registry.register(
            "plugin_failed_loads",
            "Plugins refused at load (upload, file change, start); the previous version kept serving",
            failed_loads.clone(),
        );
        let in_use = Family::default();
        registry.register(
            "instances_in_use",
            "Plugin instances running a call now",
            in_use.clone(),
        );
        let ledger_instances = Family::default();
        registry.register(
            "ledger_instances",
            "Service instances the ledger holds",
            ledger_instances.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "HTTP connections open now, idle ones included",
            connections_open.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections answered 503 and closed because max_connections were open",
            connections_refused.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            instantiate_seconds,
            call_seconds,
            queue_wait_seconds,
            stops,
            busy,
            swaps,
            failed_loads,
            in_use,
            ledger_instances,
            connections_open,
            connections_refused,
        }
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// An accepted connection closed.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A connection was refused at `max_connections`.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// One request from tsuru, answered with `status` after `took`.
    pub fn request(&self, service: &str, action: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                service: service.to_owned(),
                action,
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&ActionLabels {
                service: service.to_owned(),
                action,
            })
            .observe(took.as_secs_f64());
        if status == BUSY_STATUS {
            self.busy
                .get_or_create(&ServiceLabels {
                    service: service.to_owned(),
                })
                .inc();
        }
    }

    /// One plugin call's sandbox and instantiation, then its own code.
    pub fn phases(&self, service: &str, instantiate: Duration, call: Duration) {
        let labels = ServiceLabels {
            service: service.to_owned(),
        };
        self.instantiate_seconds
            .get_or_create(&labels)
            .observe(instantiate.as_secs_f64());
        self.call_seconds
            .get_or_create(&labels)
            .observe(call.as_secs_f64());
    }

    /// How long a call waited for a place under a `max_concurrent_calls`.
    pub fn queue_wait(&self, service: &str, waited: Duration) {
        self.queue_wait_seconds
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .observe(waited.as_secs_f64());
    }

    /// A plugin call the host stopped, for `reason` (the runtime's `Stop::reason`).
    pub fn stop(&self, service: &str, reason: &'static str) {
        self.stops
            .get_or_create(&StopLabels {
                service: service.to_owned(),
                reason,
            })
            .inc();
    }

    /// A new version of a service's plugin replaced the serving one.
    pub fn swapped(&self, service: &str) {
        self.swaps
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .inc();
    }

    /// A service's plugin was refused at load.
    pub fn failed_load(&self, service: &str) {
        self.failed_loads
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .inc();
    }

    /// The page, with each service's gauges as `services` says they are now.
    pub fn encode<'a>(
        &self,
        services: impl IntoIterator<Item = ServiceGauges<'a>>,
    ) -> Result<String, std::fmt::Error> {
        self.in_use.clear();
        self.ledger_instances.clear();
        for gauges in services {
            let labels = ServiceLabels {
                service: gauges.service.to_owned(),
            };
            self.in_use
                .get_or_create(&labels)
                .set(i64::try_from(gauges.in_use).unwrap_or(i64::MAX));
            self.ledger_instances
                .get_or_create(&labels)
                .set(i64::try_from(gauges.ledger_instances).unwrap_or(i64::MAX));
        }
        let mut page = String::new();
        prometheus_client::encoding::text::encode(&mut page, &self.registry)?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_openmetrics_with_every_family() {
        let metrics = Metrics::new();
        metrics.request("queue", "create", 201, Duration::from_millis(3));
        metrics.stop("queue", "deadline");
        let page = metrics
            .encode([ServiceGauges {
                service: "queue",
                in_use: 2,
                ledger_instances: 7,
            }])
            .expect("the page encodes");
        assert!(
            page.contains(
                r#"orizuru_requests_total{service="queue",action="create",status="201"} 1"#
            ),
            "{page}"
        );
        assert!(
            page.contains(r#"orizuru_plugin_stops_total{service="queue",reason="deadline"} 1"#),
            "{page}"
        );
        assert!(
            page.contains("# TYPE orizuru_request_duration_seconds histogram"),
            "{page}"
        );
        assert!(
            page.contains(r#"orizuru_instances_in_use{service="queue"} 2"#),
            "{page}"
        );
        assert!(
            page.contains(r#"orizuru_ledger_instances{service="queue"} 7"#),
            "{page}"
        );
        assert!(page.ends_with("# EOF\n"), "{page}");
    }
}
