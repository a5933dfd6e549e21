//! `ccotel serve`: load the config, bind both ports, run until SIGTERM/SIGINT.

use super::ServeArgs;
use crate::config::{self, Config, Overrides};
use anyhow::Context;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(
        args.config.as_deref(),
        &config::process_env,
        &Overrides {
            grpc: args.grpc,
            http: args.http,
            store_path: args.store,
        },
    )?;
    crate::heap::few_arenas();
    crate::heap::fixed_thresholds();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(crate::sched::short_slices)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let http = tokio::net::TcpListener::bind(config.http_addr())
            .await
            .with_context(|| format!("cannot listen on {} (server.http)", config.http_addr()))?;
        let grpc = tokio::net::TcpListener::bind(config.grpc_addr())
            .await
            .with_context(|| format!("cannot listen on {} (server.grpc)", config.grpc_addr()))?;
        tracing::info!(
            http = %http.local_addr()?,
            grpc = %grpc.local_addr()?,
            exporters = config.exporters.len(),
            "ccotel listening"
        );
        crate::app::run(config, http, grpc, crate::app::shutdown_signal()).await
    })
}
