//! The merge engine: one task that owns all session state. It forwards native
//! metrics and logs unchanged, and folds hooks, logs, native spans and
//! transcripts into one trace per session.

use crate::export::{ExportItem, FanOut};
use crate::model::{Payload, Signal};
use crate::receive::Accepted;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Drains the ingest channel until it is closed (or `stop` fires, after which
/// what is already queued is still processed), then returns.
pub async fn run(
    mut rx: mpsc::Receiver<Accepted>,
    fanout: FanOut,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            next = rx.recv() => match next {
                Some(accepted) => route(&fanout, accepted),
                None => break,
            },
            _ = stop.changed() => {
                rx.close();
                while let Some(accepted) = rx.recv().await {
                    route(&fanout, accepted);
                }
                break;
            }
        }
    }
}

fn route(fanout: &FanOut, accepted: Accepted) {
    match accepted.event.payload {
        Payload::Logs(r) => fanout.send(ExportItem::Logs(Arc::new(r))),
        Payload::Metrics(r) => fanout.send(ExportItem::Metrics(Arc::new(r))),
        Payload::Traces(r) => {
            if fanout.wants(Signal::NativeTraces) {
                fanout.send(ExportItem::NativeTraces(Arc::new(r)));
            }
        }
        Payload::Hook(_) => {}
    }
}
