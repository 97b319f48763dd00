//! Prometheus metrics, served as text at `/metrics`.

use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The demo's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern, status and strategy.
    pub requests: IntCounterVec,
    /// Tenant lookups by `result`: `hit` (served from the in-process cache) or `miss`.
    pub tenant_cache: IntCounterVec,
    /// Connections open in the demo's catalog pool.
    pub control_connections: IntGauge,
    /// Connections the store holds, by `state` (`open`, `idle`).
    pub store_connections: prometheus::IntGaugeVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, status and strategy",
            ),
            &["route", "status", "strategy"],
        )?;
        let tenant_cache = IntCounterVec::new(
            Opts::new(
                "tenant_cache_lookups_total",
                "Tenant lookups by result (hit or miss)",
            ),
            &["result"],
        )?;
        let control_connections = IntGauge::new(
            "db_control_pool_connections",
            "Connections open in the catalog pool",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(tenant_cache.clone()))?;
        let store_connections = prometheus::IntGaugeVec::new(
            Opts::new(
                "db_store_pool_connections",
                "Connections the tenant store holds, by state",
            ),
            &["state"],
        )?;
        registry.register(Box::new(control_connections.clone()))?;
        registry.register(Box::new(store_connections.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            tenant_cache,
            control_connections,
            store_connections,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
