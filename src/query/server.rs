//! The query service over the store, and the live feed behind `Tail`.

use super::pb::query_server::{Query, QueryServer};
use super::pb::{
    GetSessionRequest, GetSessionResponse, ListSessionsRequest, ListSessionsResponse, Span,
    StatsRequest, StatsResponse, TailRequest,
};
use crate::store::query::{GroupBy, LookupError};
use crate::store::Store;
use std::path::PathBuf;
use std::pin::Pin;
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Spans as they are exported, for `Tail` subscribers. Bounded: a
/// subscriber that falls behind skips ahead rather than holding memory.
pub type Feed = broadcast::Sender<Span>;

/// A feed with room for a burst of spans.
pub fn feed() -> Feed {
    broadcast::channel(4096).0
}

/// Serves queries from the store at `path` (its own read connection).
pub struct QueryService {
    path: PathBuf,
    feed: Feed,
}

impl QueryService {
    pub fn new(store_dir: PathBuf, feed: Feed) -> QueryServer<QueryService> {
        QueryServer::new(QueryService {
            path: store_dir,
            feed,
        })
    }

    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let store = Store::open(&path).map_err(|e| Status::unavailable(e.to_string()))?;
            f(&store)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    }
}

fn lookup_status(e: LookupError) -> Status {
    match e {
        LookupError::NotFound(_) => Status::not_found(e.to_string()),
        LookupError::Ambiguous { .. } => Status::invalid_argument(e.to_string()),
        LookupError::Store(e) => Status::unavailable(e.to_string()),
    }
}

#[tonic::async_trait]
impl Query for QueryService {
    async fn list_sessions(
        &self,
        request: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        let r = request.into_inner();
        let sessions = self
            .with_store(move |s| {
                s.list_sessions(&r.filter.unwrap_or_default(), r.limit)
                    .map_err(|e| Status::unavailable(e.to_string()))
            })
            .await?;
        Ok(Response::new(ListSessionsResponse { sessions }))
    }

    async fn get_session(
        &self,
        request: Request<GetSessionRequest>,
    ) -> Result<Response<GetSessionResponse>, Status> {
        let prefix = request.into_inner().session_id_prefix;
        let (summary, spans) = self
            .with_store(move |s| s.get_session(&prefix).map_err(lookup_status))
            .await?;
        let spans = spans
            .iter()
            .map(|sp| super::span_to_pb(&summary.session_id, sp))
            .collect();
        Ok(Response::new(GetSessionResponse {
            summary: Some(summary),
            spans,
        }))
    }

    async fn stats(
        &self,
        request: Request<StatsRequest>,
    ) -> Result<Response<StatsResponse>, Status> {
        let r = request.into_inner();
        let group = GroupBy::parse(&r.group_by).ok_or_else(|| {
            Status::invalid_argument(format!(
                "group_by {:?}: use day, model, project or tool",
                r.group_by
            ))
        })?;
        let rows = self
            .with_store(move |s| {
                s.stats(&r.filter.unwrap_or_default(), group)
                    .map_err(|e| Status::unavailable(e.to_string()))
            })
            .await?;
        Ok(Response::new(StatsResponse { rows }))
    }

    type TailStream = Pin<Box<dyn Stream<Item = Result<Span, Status>> + Send>>;

    async fn tail(
        &self,
        request: Request<TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let prefix = request.into_inner().session_id_prefix;
        let mut rx = self.feed.subscribe();
        let stream = async_stream(move |tx| async move {
            loop {
                match rx.recv().await {
                    Ok(span) => {
                        if span.session_id.starts_with(&prefix) && tx.send(Ok(span)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task, ending when the task ends or the client leaves.
fn async_stream<F, Fut>(f: F) -> Pin<Box<dyn Stream<Item = Result<Span, Status>> + Send>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Span, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
