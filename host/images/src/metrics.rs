//! Prometheus metrics (`GET /metrics`, OpenMetrics text): requests by route, method and
//! status with their latency, image bytes in and out per store, auditor verdicts, and each store plugin's
//! lifetime calls, faults, deadline hits and memory-cap hits (read from the plugins at scrape
//! time, so they never go down across hot swaps and rollbacks).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::stores::StoreSet;

type Labels = Vec<(&'static str, String)>;

/// Picks one counter out of a plugin's totals.
type TotalOf = fn(&glass_runtime::PluginTotals) -> u64;

/// Which way image bytes moved through a store.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// Uploaded into the store.
    In,
    /// Read out of the store for a download.
    Out,
}

/// An auditor's verdict on one stored copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditVerdict {
    Ok,
    /// Bytes differ from what was recorded (digest or size).
    Corrupt,
    /// The store has no data at the location.
    Missing,
    /// The store failed to deliver the bytes.
    Unreadable,
}

impl AuditVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditVerdict::Ok => "ok",
            AuditVerdict::Corrupt => "corrupt",
            AuditVerdict::Missing => "missing",
            AuditVerdict::Unreadable => "unreadable",
        }
    }
}

/// What the image cache did for a download.
#[derive(Debug, Clone, Copy)]
pub enum CacheEvent {
    Hit,
    Miss,
}

/// Keystone token validations by result (`valid`, `invalid`, `unavailable`): what Glass
/// asked Keystone, cached answers not included.
#[derive(Clone, Debug, Default)]
pub struct KeystoneCounter(Family<Labels, Counter>);

impl KeystoneCounter {
    pub fn inc(&self, result: &'static str) {
        self.0
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    /// Validations with `result` so far.
    pub fn get(&self, result: &'static str) -> u64 {
        self.0
            .get_or_create(&vec![("result", result.to_owned())])
            .get()
    }
}

/// The request method as a metrics label: the standard methods by name, anything else
/// `other`, so a client inventing method names cannot grow the label set.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub struct Metrics {
    registry: Registry,
    /// Token validations asked of Keystone (given to `keystone::Keystone`).
    pub keystone: KeystoneCounter,
    cache: Family<Labels, Counter>,
    audits: Family<Labels, Counter>,
    audit_bytes: Counter,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    store_bytes: Family<Labels, Counter>,
    validator_results: Family<Labels, Counter>,
    list_work: Histogram,
    list_budget_spent: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~100 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl Metrics {
    pub fn new(stores: Arc<StoreSet>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let store_bytes = Family::<Labels, Counter>::default();
        registry.register(
            "glass_http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "glass_http_request_duration_seconds",
            "Time to the response head, by method and route",
            latency.clone(),
        );
        registry.register(
            "glass_store_bytes",
            "Image bytes moved through each store (direction: in = upload, out = download)",
            store_bytes.clone(),
        );
        let cache = Family::<Labels, Counter>::default();
        registry.register(
            "glass_cache_downloads",
            "Downloads of images in cached stores, by result (hit: served from the image cache)",
            cache.clone(),
        );
        let audits = Family::<Labels, Counter>::default();
        let audit_bytes = Counter::default();
        registry.register(
            "glass_audit_copies",
            "Stored copies the auditor checked, by store and verdict (ok, corrupt, missing, unreadable)",
            audits.clone(),
        );
        registry.register(
            "glass_audit_bytes",
            "Bytes the auditor re-read",
            audit_bytes.clone(),
        );
        registry.register_collector(Box::new(PluginCollector { stores }));
        let validator_results = Family::<Labels, Counter>::default();
        registry.register(
            "glass_validator_results",
            "Metadata validator verdicts on image writes, by validator and result (accepted, \
             refused, warned, failed-closed, failed-open)",
            validator_results.clone(),
        );
        let keystone = KeystoneCounter::default();
        registry.register(
            "glass_keystone_validations",
            "Token validations Glass asked Keystone for, by result (cached answers not counted)",
            keystone.0.clone(),
        );
        // 1 to ~1 000 000 units.
        let list_work = Histogram::new(exponential_buckets(1.0, 4.0, 11));
        registry.register(
            "glass_registry_list_work",
            "Work (index seeks and records read) each image listing cost the registry",
            list_work.clone(),
        );
        let list_budget_spent = Counter::default();
        registry.register(
            "glass_registry_list_budget_spent",
            "Image listings that stopped on [registry] list_budget and answered with a next link",
            list_budget_spent.clone(),
        );
        Metrics {
            list_work,
            list_budget_spent,
            keystone,
            validator_results,
            registry,
            cache,
            audits,
            audit_bytes,
            requests,
            latency,
            store_bytes,
        }
    }

    /// Counts one answered request. `route` must come from a bounded set (a matched route
    /// template, never the raw path); the method is reduced by [`method_label`].
    pub fn observe_request(&self, method: &http::Method, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("route", route.to_owned()),
            ])
            .observe(seconds);
    }

    /// Counts one verdict of a metadata validator (`validators`).
    pub fn validator_result(&self, validator: &str, result: &str) {
        self.validator_results
            .get_or_create(&vec![
                ("validator", validator.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// Counts image bytes moved through `store`.
    pub fn store_bytes(&self, store: &str, direction: Direction, bytes: u64) {
        let direction = match direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        self.store_bytes
            .get_or_create(&vec![
                ("store", store.to_owned()),
                ("direction", direction.to_owned()),
            ])
            .inc_by(bytes);
    }

    pub fn cache_event(&self, event: CacheEvent) {
        let result = match event {
            CacheEvent::Hit => "hit",
            CacheEvent::Miss => "miss",
        };
        self.cache
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    /// Counts one audited copy.
    pub fn audit_verdict(&self, store: &str, verdict: AuditVerdict) {
        self.audits
            .get_or_create(&vec![
                ("store", store.to_owned()),
                ("verdict", verdict.as_str().to_owned()),
            ])
            .inc();
    }

    /// Records what one listing cost, and whether it stopped on its budget.
    pub fn list_work(&self, examined: usize, budget: usize) {
        self.list_work.observe(examined as f64);
        if examined >= budget {
            self.list_budget_spent.inc();
        }
    }

    pub fn audit_bytes(&self, bytes: u64) {
        self.audit_bytes.inc_by(bytes);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Reads each store plugin's lifetime counters at scrape time.
#[derive(Debug)]
struct PluginCollector {
    stores: Arc<StoreSet>,
}

impl std::fmt::Debug for StoreSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries().iter().map(|e| &e.id))
            .finish()
    }
}

impl Collector for PluginCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals: Vec<_> = self
            .stores
            .entries()
            .iter()
            .map(|e| (e.id.clone(), e.plugin.totals()))
            .collect();
        let series: [(&str, &str, TotalOf); 4] = [
            ("glass_plugin_calls", "Store plugin calls started", |t| {
                t.calls
            }),
            (
                "glass_plugin_faults",
                "Store plugin calls that trapped, hit the deadline or the memory cap",
                |t| t.faults,
            ),
            (
                "glass_plugin_deadline_hits",
                "Store plugin calls stopped by the CPU deadline",
                |t| t.deadline_hits,
            ),
            (
                "glass_plugin_memory_hits",
                "Store plugin calls stopped by the memory cap",
                |t| t.memory_hits,
            ),
        ];
        for (name, help, value) in series {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (store, t) in &totals {
                let labels = vec![("store", store.clone())];
                ConstCounter::new(value(t)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
