//! Prometheus metrics at `GET /metrics`, with vLLM's semantics and bucket boundaries under
//! the `textnlp_` prefix (so dashboards and autoscalers built for vLLM map over directly).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::engine::EngineHandle;
use crate::tenancy::Usage;

/// Tenants with a label of their own in the usage metrics; the rest add up under `_other`,
/// so the series count stays bounded however many tenants there are.
pub const MAX_TENANT_LABELS: usize = 100;

/// vLLM's `time_to_first_token_seconds` buckets.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's `inter_token_latency_seconds` buckets.
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's `e2e_request_latency_seconds` buckets.
const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    pub time_to_first_token: Histogram,
    pub inter_token_latency: Histogram,
    pub e2e_latency: Histogram,
    pub prompt_tokens: IntCounter,
    pub generation_tokens: IntCounter,
    pub rejected_overload: IntCounter,
    waiting: IntGauge,
    running: IntGauge,
    kv_usage: prometheus::Gauge,
    kv_capacity: IntGauge,
    cancelled: IntCounter,
    steps: IntCounter,
    tenant_usage: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let registry =
            Registry::new_custom(Some("textnlp".into()), None).expect("a valid metric prefix");
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid histogram options");
            registry.register(Box::new(h.clone())).expect("unique name");
            h
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid counter options");
            registry.register(Box::new(c.clone())).expect("unique name");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid gauge options");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        };
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid counter options");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique name");
        let tenant_usage = IntCounterVec::new(
            Opts::new(
                "tenant_usage_total",
                "Usage per tenant (the busiest ones; the rest as `_other`): requests, rate_limited, prompt_tokens, completion_tokens, job_records",
            ),
            &["tenant", "kind"],
        )
        .expect("valid counter options");
        registry
            .register(Box::new(tenant_usage.clone()))
            .expect("unique name");
        let kv_usage = prometheus::Gauge::new(
            "kv_cache_usage_perc",
            "Fraction of the KV-cache token pool reserved by running sequences (0..1)",
        )
        .expect("valid gauge options");
        registry
            .register(Box::new(kv_usage.clone()))
            .expect("unique name");
        Arc::new(Metrics {
            requests,
            time_to_first_token: histogram(
                "time_to_first_token_seconds",
                "Time from request arrival to the first generated token",
                TTFT_BUCKETS,
            ),
            inter_token_latency: histogram(
                "inter_token_latency_seconds",
                "Time between consecutive generated tokens of a sequence",
                ITL_BUCKETS,
            ),
            e2e_latency: histogram(
                "e2e_request_latency_seconds",
                "Time from request arrival to its last token",
                E2E_BUCKETS,
            ),
            prompt_tokens: counter("prompt_tokens_total", "Prompt tokens of admitted requests"),
            generation_tokens: counter(
                "generation_tokens_total",
                "Tokens generated and delivered to clients",
            ),
            rejected_overload: counter(
                "requests_rejected_overload_total",
                "Requests refused with 429 because a queue was full",
            ),
            waiting: gauge("num_requests_waiting", "Sequences waiting for admission"),
            running: gauge(
                "num_requests_running",
                "Sequences in the running batch (the batch size of the next step)",
            ),
            kv_usage,
            kv_capacity: gauge(
                "kv_cache_capacity_tokens",
                "Size of the KV-cache token pool",
            ),
            cancelled: counter(
                "sequences_cancelled_total",
                "Sequences freed early because their client went away",
            ),
            steps: counter("engine_steps_total", "Batched forward steps run"),
            tenant_usage,
            registry,
        })
    }

    /// The text exposition, with the engine's live numbers and the tenants' usage totals
    /// (`(tenant, usage)`) sampled now.
    pub fn render(&self, engine: &EngineHandle, usage: &[(String, Usage)]) -> String {
        self.set_tenant_usage(usage);
        let s = engine.stats();
        let load = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as i64;
        self.waiting.set(load(&s.waiting));
        self.running.set(load(&s.running));
        let capacity = load(&s.kv_capacity);
        self.kv_capacity.set(capacity);
        self.kv_usage
            .set(load(&s.kv_reserved) as f64 / capacity.max(1) as f64);
        // Counters mirror the engine's own monotonic counts.
        for (counter, total) in [(&self.cancelled, &s.cancelled), (&self.steps, &s.steps)] {
            let total = total.load(Ordering::Relaxed);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    fn set_tenant_usage(&self, usage: &[(String, Usage)]) {
        let mut by_tenant: std::collections::BTreeMap<&str, Usage> = Default::default();
        for (tenant, u) in usage {
            by_tenant.entry(tenant).or_default().add(u);
        }
        let mut ranked: Vec<(&str, Usage)> = by_tenant.into_iter().collect();
        ranked.sort_by_key(|(_, u)| std::cmp::Reverse(u.prompt_tokens + u.completion_tokens));
        let mut other = Usage::default();
        for (rank, (tenant, u)) in ranked.into_iter().enumerate() {
            if rank < MAX_TENANT_LABELS {
                self.mirror(tenant, &u);
            } else {
                other.add(&u);
            }
        }
        if other != Usage::default() {
            self.mirror("_other", &other);
        }
    }

    /// Counters follow the stored totals (which only grow).
    fn mirror(&self, tenant: &str, u: &Usage) {
        for (kind, total) in [
            ("requests", u.requests),
            ("rate_limited", u.rate_limited),
            ("prompt_tokens", u.prompt_tokens),
            ("completion_tokens", u.completion_tokens),
            ("job_records", u.job_records),
        ] {
            let counter = self.tenant_usage.with_label_values(&[tenant, kind]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
}

/// Middleware counting every response by route pattern (never the raw path, so label
/// cardinality stays bounded), method and status.
pub async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics
        .requests
        .with_label_values(&[&route, &method, &status])
        .inc();
    tracing::debug!(%route, %method, %status, elapsed = ?started.elapsed(), "request");
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_labels_are_bounded_and_the_rest_add_up_under_other() {
        let metrics = Metrics::new();
        let extra = 20;
        let usage: Vec<(String, Usage)> = (0..MAX_TENANT_LABELS + extra)
            .map(|i| {
                let u = Usage {
                    completion_tokens: i as u64 + 1,
                    ..Usage::default()
                };
                (format!("t{i}"), u)
            })
            .collect();
        metrics.set_tenant_usage(&usage);
        metrics.set_tenant_usage(&usage); // idempotent: counters follow the totals
        let tokens = |tenant: &str| {
            metrics
                .tenant_usage
                .with_label_values(&[tenant, "completion_tokens"])
                .get()
        };
        let families = metrics.registry.gather();
        let family = families
            .iter()
            .find(|f| f.name() == "textnlp_tenant_usage_total")
            .expect("the tenant usage family");
        let tenants: std::collections::BTreeSet<String> = family
            .get_metric()
            .iter()
            .flat_map(|m| m.get_label().iter())
            .filter(|l| l.name() == "tenant")
            .map(|l| l.value().to_owned())
            .collect();
        assert_eq!(tenants.len(), MAX_TENANT_LABELS + 1);
        // The busiest keep their label; the 20 least busy (1..=20 tokens) are `_other`.
        let busiest = format!("t{}", MAX_TENANT_LABELS + extra - 1);
        assert_eq!(tokens(&busiest), (MAX_TENANT_LABELS + extra) as u64);
        assert_eq!(tokens("_other"), (1..=extra as u64).sum::<u64>());
    }
}
