//! Which failed exports to try again, as a pure function of the answer, after
//! the OTLP specification: HTTP 429/502/503/504 and the listed gRPC codes are
//! retryable, RESOURCE_EXHAUSTED only when the server sent RetryInfo, and
//! everything else (a 400 above all) is final, except a refusal of the
//! request's size (HTTP 413, RESOURCE_EXHAUSTED without RetryInfo), which is
//! tried again in smaller requests.

use std::time::{Duration, SystemTime};

/// What to do with a batch after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again, after the server's delay if it gave one.
    Retry(Option<Duration>),
    /// Give up on this batch.
    Final,
    /// The backend refused the request's size: send its items in smaller
    /// requests (a single item that is still too large is dropped).
    TooLarge,
}

/// Classifies an HTTP status (only called for non-2xx answers).
pub fn classify_http(status: u16, retry_after: Option<&str>) -> Verdict {
    match status {
        429 | 502 | 503 | 504 => Verdict::Retry(retry_after.and_then(parse_retry_after)),
        413 => Verdict::TooLarge,
        _ => Verdict::Final,
    }
}

/// Classifies a gRPC status code; `retry_info` is the delay from a
/// `google.rpc.RetryInfo` detail, when the server sent one.
pub fn classify_grpc(code: tonic::Code, retry_info: Option<Duration>) -> Verdict {
    use tonic::Code::*;
    match code {
        Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => {
            Verdict::Retry(retry_info)
        }
        ResourceExhausted if retry_info.is_some() => Verdict::Retry(retry_info),
        // Without RetryInfo this is not retryable as is; it is also what a
        // server answers to a message over its size limit.
        ResourceExhausted => Verdict::TooLarge,
        _ => Verdict::Final,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Exponential backoff with full jitter: attempt 0 waits up to `initial`,
/// each later attempt doubles the ceiling up to `max`.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let ceiling = initial
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(max);
    let jitter: f64 = rand::random::<f64>();
    ceiling.mul_f64(0.5 + jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_table() {
        let table: &[(u16, Option<&str>, Verdict)] = &[
            (400, None, Verdict::Final),
            (401, None, Verdict::Final),
            (403, None, Verdict::Final),
            (404, None, Verdict::Final),
            (413, None, Verdict::TooLarge),
            (500, None, Verdict::Final),
            (429, None, Verdict::Retry(None)),
            (429, Some("7"), Verdict::Retry(Some(Duration::from_secs(7)))),
            (502, None, Verdict::Retry(None)),
            (503, Some("2"), Verdict::Retry(Some(Duration::from_secs(2)))),
            (504, Some("garbage"), Verdict::Retry(None)),
        ];
        for (status, after, want) in table {
            assert_eq!(classify_http(*status, *after), *want, "status {status}");
        }
    }

    #[test]
    fn grpc_table() {
        use tonic::Code::*;
        let d = Some(Duration::from_secs(1));
        let table = [
            (Cancelled, None, Verdict::Retry(None)),
            (DeadlineExceeded, None, Verdict::Retry(None)),
            (Aborted, None, Verdict::Retry(None)),
            (OutOfRange, None, Verdict::Retry(None)),
            (Unavailable, d, Verdict::Retry(d)),
            (DataLoss, None, Verdict::Retry(None)),
            (ResourceExhausted, None, Verdict::TooLarge),
            (ResourceExhausted, d, Verdict::Retry(d)),
            (InvalidArgument, None, Verdict::Final),
            (Unauthenticated, None, Verdict::Final),
            (PermissionDenied, None, Verdict::Final),
            (Unimplemented, None, Verdict::Final),
            (Internal, None, Verdict::Final),
        ];
        for (code, info, want) in table {
            assert_eq!(classify_grpc(code, info), want, "code {code:?}");
        }
    }

    #[test]
    fn retry_after_http_date_in_the_past_is_zero() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(5);
        for attempt in 0..30 {
            let d = backoff(attempt, i, m);
            assert!(d <= m);
            let ceiling = i.saturating_mul(1 << attempt.min(20)).min(m);
            assert!(d >= ceiling / 2);
        }
    }
}
