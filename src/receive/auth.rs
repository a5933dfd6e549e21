//! The shared token: when set, every OTLP, hook and query request must carry
//! `Authorization: Bearer <token>`. Compared in constant time so the token
//! cannot be guessed byte by byte from response timings.

use std::sync::Arc;

/// The token to check, if any.
#[derive(Clone, Default)]
pub struct Auth {
    token: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Why a request was refused.
pub const REFUSED: &str =
    "missing or wrong token: send `Authorization: Bearer <token>` with the token ccotel was given (server.token / CCOTEL_TOKEN)";

impl Auth {
    pub fn new(token: Option<&str>) -> Auth {
        Auth {
            token: token.map(|t| Arc::from(t.as_bytes())),
        }
    }

    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether an `Authorization` header value passes.
    pub fn check(&self, header: Option<&[u8]>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(value) = header else {
            return false;
        };
        let presented = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .unwrap_or(value);
        constant_time_eq(presented, token)
    }

    /// A gRPC interceptor enforcing the token.
    pub fn interceptor(
        &self,
    ) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
        let auth = self.clone();
        move |req: tonic::Request<()>| {
            let header = req.metadata().get("authorization").map(|v| v.as_bytes());
            if auth.check(header) {
                Ok(req)
            } else {
                Err(tonic::Status::unauthenticated(REFUSED))
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_is_checked() {
        let open = Auth::new(None);
        assert!(open.check(None));
        let auth = Auth::new(Some("s3cret"));
        assert!(auth.check(Some(b"Bearer s3cret")));
        assert!(auth.check(Some(b"s3cret")));
        assert!(!auth.check(Some(b"Bearer s3cre")));
        assert!(!auth.check(Some(b"Bearer s3cret2")));
        assert!(!auth.check(None));
    }
}
