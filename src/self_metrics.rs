//! ccotel's own counters as OTLP metrics, through the OpenTelemetry SDK, for
//! operators who watch ccotel in the same backend as everything else. Off
//! unless `[self_metrics] endpoint` is set.

use crate::config::SelfMetricsConfig;
use crate::telemetry::Registry;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use std::sync::Arc;

/// Starts periodic export; the returned provider must be shut down at exit.
pub fn start(
    cfg: &SelfMetricsConfig,
    registry: Arc<Registry>,
) -> anyhow::Result<Option<SdkMeterProvider>> {
    let Some(endpoint) = cfg.endpoint.as_deref() else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/metrics", endpoint.trim_end_matches('/')))
        .with_headers(cfg.headers.clone().into_iter().collect())
        .build()?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(cfg.interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(
            Resource::builder()
                .with_service_name("ccotel")
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let meter = provider.meter("ccotel");
    for name in registry.stats.snapshot().into_iter().map(|(k, _)| k) {
        let r = registry.clone();
        let key = name.clone();
        let value = move || r.stats.snapshot().get(&key).and_then(|v| v.as_u64());
        if crate::telemetry::is_gauge(&name) {
            meter
                .u64_observable_gauge(format!("ccotel.{name}"))
                .with_callback(move |obs| value().into_iter().for_each(|v| obs.observe(v, &[])))
                .build();
        } else {
            meter
                .u64_observable_counter(format!("ccotel.{name}"))
                .with_callback(move |obs| value().into_iter().for_each(|v| obs.observe(v, &[])))
                .build();
        }
    }
    for name in registry.exporter_counter_names() {
        let r = registry.clone();
        let key = name.clone();
        let callback = move |values: &mut dyn FnMut(u64, &[KeyValue])| {
            for (exporter, snap) in r.exporter_snapshots() {
                if let Some(v) = snap.get(&key).and_then(|v| v.as_u64()) {
                    values(v, &[KeyValue::new("exporter", exporter)]);
                }
            }
        };
        if crate::telemetry::is_gauge(&name) {
            meter
                .u64_observable_gauge(format!("ccotel.exporter.{name}"))
                .with_callback(move |obs| callback(&mut |v, a| obs.observe(v, a)))
                .build();
        } else {
            meter
                .u64_observable_counter(format!("ccotel.exporter.{name}"))
                .with_callback(move |obs| callback(&mut |v, a| obs.observe(v, a)))
                .build();
        }
    }
    Ok(Some(provider))
}
