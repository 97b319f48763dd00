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
    /// Statements the tenants' scopes sent in this process, by `tenant`: the busiest tenants
    /// by slug, the rest summed as `other` (filled at each scrape, see [`Metrics::tenants`]).
    pub tenant_statements: IntCounterVec,
    /// Their time in microseconds, by `tenant` as above.
    pub tenant_statement_micros: IntCounterVec,
    /// The rows they returned or touched, by `tenant` as above.
    pub tenant_rows: IntCounterVec,
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
        let per_tenant = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let v = IntCounterVec::new(Opts::new(name, help), &["tenant"])?;
            registry.register(Box::new(v.clone()))?;
            Ok(v)
        };
        let tenant_statements = per_tenant(
            "tenant_statements_total",
            "Statements tenants' scopes sent in this process (the busiest by slug, the rest as other)",
        )?;
        let tenant_statement_micros = per_tenant(
            "tenant_statement_microseconds_total",
            "Time of those statements in microseconds",
        )?;
        let tenant_rows = per_tenant(
            "tenant_rows_total",
            "Rows those statements returned or touched",
        )?;
        Ok(Metrics {
            tenant_statements,
            tenant_statement_micros,
            tenant_rows,
            registry,
            requests,
            tenant_cache,
            control_connections,
            store_connections,
        })
    }

    /// Fills the per-tenant series from this process's usage meter: the `busiest` tenants
    /// under their slugs (`slug_of` names them), every other tenant summed under `other`. The
    /// series are set afresh at each scrape, so a tenant that falls out of the busiest leaves
    /// its series (and `other` grows by its count): at most `busiest + 1` series per metric,
    /// whatever the number of tenants.
    pub fn tenants(
        &self,
        busiest: &[(String, tenancy_core::usage::StatementUsage)],
        other: tenancy_core::usage::StatementUsage,
    ) {
        for v in [
            &self.tenant_statements,
            &self.tenant_statement_micros,
            &self.tenant_rows,
        ] {
            v.reset();
        }
        let named = busiest.iter().map(|(s, u)| (s.as_str(), *u));
        for (tenant, u) in named.chain(std::iter::once(("other", other))) {
            self.tenant_statements
                .with_label_values(&[tenant])
                .inc_by(u.statements);
            self.tenant_statement_micros
                .with_label_values(&[tenant])
                .inc_by(u.micros);
            self.tenant_rows.with_label_values(&[tenant]).inc_by(u.rows);
        }
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
