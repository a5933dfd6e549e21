//! Where the CLI's answers come from: the local store, or a ccotel's query API
//! (`--server`). Both answer the same questions with the same types.

use super::pb::query_client::QueryClient;
use super::pb::{
    Filter, GetSessionRequest, ListSessionsRequest, SessionSummary, StatsRequest, StatsRow,
};
use crate::model::span::SpanRecord;
use crate::store::query::GroupBy;
use crate::store::Store;
use anyhow::Context;
use std::path::Path;

/// Adds `Authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Default)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(token: Option<&str>) -> anyhow::Result<Bearer> {
        Ok(Bearer(
            token
                .map(|t| format!("Bearer {t}").parse())
                .transpose()
                .map_err(|_| anyhow::anyhow!("the token holds characters a header cannot carry"))?,
        ))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A query client for a remote ccotel.
pub type Remote =
    QueryClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>>;

/// Connects to a ccotel's query API. For https://, the public roots are
/// trusted, and also the PEM certificates in `ca_cert`: a team gateway's
/// certificate is often signed by a private CA.
pub async fn connect(
    url: &str,
    token: Option<&str>,
    ca_cert: Option<&Path>,
) -> anyhow::Result<Remote> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .with_context(|| format!("{url:?} is not a URL"))?;
    if url.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .with_webpki_roots()
            .with_enabled_roots();
        if let Some(path) = ca_cert {
            // The hook's own loader, for the same checks and messages.
            crate::cli::hook_http::add_ca_certs(&mut rustls::RootCertStore::empty(), path)?;
            let pem = std::fs::read(path)
                .with_context(|| format!("--ca-cert {}: cannot read it", path.display()))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        let e = anyhow::Error::from(e);
        let hint = if ca_cert.is_none() && format!("{e:#}").contains("UnknownIssuer") {
            " (if a private CA signed its certificate, pass --ca-cert <PEM file> or set CCOTEL_CA_CERT)"
        } else {
            ""
        };
        e.context(format!("cannot reach ccotel's query API at {url}{hint}"))
    })?;
    Ok(QueryClient::with_interceptor(channel, Bearer::new(token)?))
}

/// A local store or a remote ccotel.
pub enum Source {
    Local(Store),
    Remote(Remote),
}

impl Source {
    /// The remote query API at `server`, or else the store under `store_dir`.
    pub async fn open(
        server: Option<&str>,
        token: Option<&str>,
        ca_cert: Option<&Path>,
        store_dir: &Path,
    ) -> anyhow::Result<Source> {
        match server {
            Some(url) => Ok(Source::Remote(connect(url, token, ca_cert).await?)),
            None => {
                if !store_dir.join("ccotel.db").exists() {
                    anyhow::bail!(
                        "no store at {}: run `ccotel serve` (or `ccotel import`) first, or pass --server URL",
                        store_dir.display()
                    );
                }
                Ok(Source::Local(Store::open(store_dir)?))
            }
        }
    }

    pub async fn sessions(
        &mut self,
        filter: Filter,
        limit: u32,
    ) -> anyhow::Result<Vec<SessionSummary>> {
        Ok(match self {
            Source::Local(s) => s.list_sessions(&filter, limit)?,
            Source::Remote(c) => {
                c.list_sessions(ListSessionsRequest {
                    filter: Some(filter),
                    limit,
                })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner()
                .sessions
            }
        })
    }

    pub async fn session(
        &mut self,
        prefix: &str,
    ) -> anyhow::Result<(SessionSummary, Vec<SpanRecord>)> {
        match self {
            Source::Local(s) => Ok(s.get_session(prefix)?),
            Source::Remote(c) => {
                let r = c
                    .get_session(GetSessionRequest {
                        session_id_prefix: prefix.to_string(),
                    })
                    .await
                    .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                    .into_inner();
                let spans = r.spans.iter().filter_map(super::span_from_pb).collect();
                Ok((r.summary.unwrap_or_default(), spans))
            }
        }
    }

    pub async fn stats(
        &mut self,
        filter: Filter,
        group: GroupBy,
        name: &str,
    ) -> anyhow::Result<Vec<StatsRow>> {
        Ok(match self {
            Source::Local(s) => s.stats(&filter, group)?,
            Source::Remote(c) => {
                c.stats(StatsRequest {
                    filter: Some(filter),
                    group_by: name.to_string(),
                })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner()
                .rows
            }
        })
    }
}
