//! Wiring and staged shutdown: receivers → merge engine → exporters. Takes
//! listeners that are already bound and a shutdown future, so tests bind port
//! 0 and stop the app when they like.

use crate::config::Config;
use crate::export::FanOut;
use crate::receive::{self, http::HttpState, Ingest};
use crate::telemetry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long exporters get to flush at shutdown.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);

/// Runs ccotel until `shutdown` resolves, then stops accepting, processes what
/// was accepted, flushes the exporters (bounded by [`SHUTDOWN_FLUSH`]) and
/// returns.
pub async fn run(
    config: Config,
    http: TcpListener,
    grpc: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let registry = Arc::new(Registry::default());
    let (ingest, rx) = Ingest::channel(
        config.server.queue_events,
        config.server.queue_bytes,
        registry.stats.clone(),
    );
    let ingest = ingest.with_hook_wait(config.server.hook_wait);
    let (fanout, exporters) = FanOut::start(
        &config.exporters,
        &registry,
        &config.store.path.join("queues"),
    )?;

    let self_metrics = crate::self_metrics::start(&config.self_metrics, registry.clone())?;
    let (store, quarantined) = crate::store::Store::open_or_recover(&config.store.path)?;
    if let Some(moved) = quarantined {
        tracing::error!(
            moved_to = %moved.display(),
            "the store file was damaged: it was moved aside and a new store started; sessions in progress could not be rebuilt"
        );
    }
    let redactor =
        crate::redact::Redactor::new(config.redaction.secrets, &config.redaction.patterns)?;
    let mut engine = crate::merge::Engine::new(config.merge.clone(), Some(store))
        .with_retention(config.store.retention)
        .with_stats(registry.stats.clone())
        .with_redactor(Arc::new(redactor));
    let feed = crate::query::server::feed();
    engine.restore();

    let (stop_tx, stop_rx) = watch::channel(false);
    let merge = crate::merge::engine::spawn(
        rx,
        ingest.activity(),
        fanout,
        stop_rx.clone(),
        engine,
        registry.stats.clone(),
        feed.clone(),
    )?;

    let auth = receive::auth::Auth::new(config.server.token.as_deref());
    let (http_tls, grpc_tls) = match &config.server.tls {
        Some(tls) => (
            Some(receive::tls::server_config(tls)?),
            Some(receive::tls::grpc_config(tls)?),
        ),
        None => (None, None),
    };
    let http_task = tokio::spawn(receive::http::serve_tls(
        http,
        HttpState {
            ingest: ingest.clone(),
            max_body: config.server.max_body_bytes,
            registry: registry.clone(),
            auth: auth.clone(),
        },
        http_tls,
        stopped(stop_rx.clone()),
    ));
    let grpc_task = tokio::spawn(receive::grpc::serve(
        grpc,
        ingest.clone(),
        config.server.max_body_bytes,
        tonic::service::Routes::new(crate::query::server::QueryService::new(
            config.store.path.clone(),
            feed,
        )),
        receive::grpc::GrpcOptions {
            auth,
            tls: grpc_tls,
        },
        stopped(stop_rx.clone()),
    ));
    drop(ingest);

    shutdown.await;
    tracing::info!("shutting down: no new requests; flushing what was accepted");
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = http_task.await {
        tracing::warn!(error = %e, "HTTP receiver stopped with an error");
    }
    if let Ok(Err(e)) = grpc_task.await {
        tracing::warn!(error = %e, "gRPC receiver stopped with an error");
    }
    let _ = merge.await;
    exporters.shutdown(SHUTDOWN_FLUSH).await;
    if let Some(provider) = self_metrics {
        // The SDK's shutdown exports one last time, on a blocking client.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    tracing::info!(counters = %registry.snapshot(), "stopped");
    Ok(())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
