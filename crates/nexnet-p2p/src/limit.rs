//! How much a peer may make us do: a token bucket for the messages it
//! sends. The bound on requests in flight is a semaphore in `connection`.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket refilled at `rate` tokens per second, holding at most
/// `rate` (one second's worth of burst).
#[derive(Debug)]
pub(crate) struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket; `None` for a rate of zero (no limit).
    pub(crate) fn new(rate: u32) -> Option<Self> {
        (rate > 0).then(|| Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        })
    }

    /// Takes one token: `None` if there was one, or how long until there is.
    /// A caller that waits that long and asks again gets it.
    pub(crate) fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_unlimited() {
        assert!(RateLimit::new(0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_rate_then_one_per_interval() {
        let mut bucket = RateLimit::new(100).unwrap();
        for _ in 0..100 {
            assert_eq!(bucket.take(), None);
        }
        let wait = bucket.take().expect("the bucket is empty");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(10));
        tokio::time::advance(wait).await;
        assert_eq!(bucket.take(), None);
        assert!(bucket.take().is_some());
        // A long pause refills the bucket, but only to one second's worth.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..100 {
            assert_eq!(bucket.take(), None);
        }
        assert!(bucket.take().is_some());
    }
}
