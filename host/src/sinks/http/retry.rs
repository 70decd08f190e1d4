//! When a webhook request is tried again, and after how long: retryable
//! statuses, exponential backoff with jitter, and the receiver's
//! `Retry-After`.

use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::StatusCode;

/// Worth trying again: the receiver was unavailable, overloaded or slow.
pub(super) fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// Delay before retry `n` (1-based): `base · 2ⁿ⁻¹`, capped at `cap`
/// (`max_backoff`), then drawn uniformly from its upper half so that many
/// senders do not retry in step; and at least what the receiver asked for
/// with `Retry-After`, up to `max_retry_after`, which may exceed
/// `max_backoff` (issue 17: a 429 asking for 2 s with `max_backoff = "1s"`
/// waits 2 s).
pub fn backoff(
    base: Duration,
    cap: Duration,
    n: u32,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
    let d = exp.min(cap);
    let half = d / 2;
    let jittered = half + half.mul_f64(fastrand::f64());
    match retry_after {
        Some(asked) => jittered.max(asked.min(max_retry_after)),
        None => jittered,
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date, taken
/// as the time from `now` until then (zero when past). Anything else is
/// ignored.
pub(super) fn parse_retry_after(v: &HeaderValue, now: std::time::SystemTime) -> Option<Duration> {
    let text = v.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(1));
        let backoff = |base, cap, n, asked| backoff(base, cap, n, asked, Duration::from_secs(60));
        for _ in 0..100 {
            let d1 = backoff(base, cap, 1, None);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = backoff(base, cap, 3, None);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d9 = backoff(base, cap, 9, None);
            assert!(d9 >= Duration::from_millis(500) && d9 <= cap, "{d9:?}");
            assert!(backoff(base, cap, 40, None) <= cap, "no overflow past 2^32");
            let asked = backoff(base, cap, 1, Some(Duration::from_millis(700)));
            assert!(asked >= Duration::from_millis(700) && asked <= cap, "{asked:?}");
            let beyond = backoff(base, cap, 1, Some(Duration::from_secs(2)));
            assert_eq!(
                beyond,
                Duration::from_secs(2),
                "Retry-After beyond max_backoff is honoured"
            );
            assert_eq!(
                backoff(base, cap, 1, Some(Duration::from_secs(3600))),
                Duration::from_secs(60),
                "up to max_retry_after"
            );
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let parse = |s: &str| parse_retry_after(&HeaderValue::from_str(s).unwrap(), now);
        assert_eq!(parse("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:40 GMT"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse("Sunday, 06-Nov-94 08:49:47 GMT"),
            Some(Duration::from_secs(10)),
            "RFC 850 form"
        );
        assert_eq!(
            parse("Sun Nov  6 08:50:37 1994"),
            Some(Duration::from_secs(60)),
            "asctime form"
        );
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:00:00 GMT"),
            Some(Duration::ZERO),
            "in the past"
        );
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("soon"), None);
    }

    #[test]
    fn retries_only_what_may_succeed_later() {
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::REQUEST_TIMEOUT));
        assert!(!retryable(StatusCode::BAD_REQUEST));
    }
}
