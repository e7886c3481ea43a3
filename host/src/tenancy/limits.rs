//! Per-tenant rate limits, in memory: a requests-per-minute and a tokens-per-minute token
//! bucket and a count of running sequences. Every check-and-take happens under one lock, so a
//! burst of concurrent requests is admitted exactly up to the limit, never past it.
//!
//! Generation requests take `prompt + max_tokens` tokens (per choice) up front, before any
//! work, and give back what they did not generate when they end: the bucket never lends
//! tokens it might not get back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::TenantLimits;

/// A bucket of `capacity` tokens refilled at `capacity` per minute.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    level: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn per_minute(capacity: u64, now: Instant) -> Self {
        TokenBucket {
            capacity: capacity as f64,
            level: capacity as f64,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let rate = self.capacity / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * rate).min(self.capacity);
        self.updated = now;
    }

    /// Takes `n` tokens, or says how long until `n` are there.
    pub fn take(&mut self, n: u64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let n = n as f64;
        if self.level >= n {
            self.level -= n;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (n - self.level) * 60.0 / self.capacity,
        ))
    }

    /// Gives back tokens taken but not used.
    pub fn give_back(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.level = (self.level + n as f64).min(self.capacity);
    }

    /// The bucket's state now, for `x-ratelimit-*` headers.
    pub fn view(&mut self, now: Instant) -> BucketView {
        self.refill(now);
        BucketView {
            limit: self.capacity as u64,
            remaining: self.level.floor() as u64,
            reset: Duration::from_secs_f64((self.capacity - self.level) * 60.0 / self.capacity),
        }
    }
}

/// One bucket's limit, what is left, and how long until it is full again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketView {
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

/// Why a tenant's request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("rate limit reached: {limit} requests per minute; retry in {}s", retry_after.as_secs().max(1))]
    Requests { limit: u64, retry_after: Duration },
    #[error("rate limit reached: {limit} tokens per minute, {remaining} left, this request needs {needed} (prompt + max_tokens); retry in {}s", retry_after.as_secs().max(1))]
    Tokens {
        limit: u64,
        remaining: u64,
        needed: u64,
        retry_after: Duration,
    },
    #[error(
        "this request needs {needed} tokens (prompt + max_tokens), more than the tenant's {limit} tokens per minute; lower max_tokens or n"
    )]
    TooManyTokens { needed: u64, limit: u64 },
    #[error(
        "this request needs {needed} sequences at once, more than the tenant's limit of {limit}; lower n"
    )]
    TooManySequences { needed: u32, limit: u32 },
    #[error(
        "the tenant runs {running} sequences, its limit is {limit}; this request needs {needed} more"
    )]
    Sequences {
        running: u32,
        needed: u32,
        limit: u32,
    },
}

impl Refusal {
    /// When to try again (none: the request cannot succeed as it is).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::Requests { retry_after, .. } | Refusal::Tokens { retry_after, .. } => {
                Some(*retry_after)
            }
            Refusal::Sequences { .. } => Some(Duration::from_secs(1)),
            Refusal::TooManyTokens { .. } | Refusal::TooManySequences { .. } => None,
        }
    }
}

struct TenantState {
    limits: TenantLimits,
    requests: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
    running: u32,
}

impl TenantState {
    fn new(limits: &TenantLimits, now: Instant) -> Self {
        TenantState {
            limits: limits.clone(),
            requests: limits
                .requests_per_minute
                .map(|n| TokenBucket::per_minute(n, now)),
            tokens: limits
                .tokens_per_minute
                .map(|n| TokenBucket::per_minute(n, now)),
            running: 0,
        }
    }
}

/// The buckets of every tenant seen since start.
#[derive(Default)]
pub struct Limiter {
    tenants: Mutex<HashMap<String, TenantState>>,
}

/// The rate-limit state of a tenant after a request was let in (for response headers).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateView {
    pub requests: Option<BucketView>,
    pub tokens: Option<BucketView>,
}

impl Limiter {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, TenantState>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state of `tenant`, (re)built when its limits changed.
    fn state<'a>(
        map: &'a mut HashMap<String, TenantState>,
        tenant: &str,
        limits: &TenantLimits,
        now: Instant,
    ) -> &'a mut TenantState {
        let state = map
            .entry(tenant.to_owned())
            .or_insert_with(|| TenantState::new(limits, now));
        if state.limits != *limits {
            let running = state.running;
            *state = TenantState::new(limits, now);
            state.running = running;
        }
        state
    }

    /// Counts one request against `tenant`'s requests per minute.
    pub fn request(&self, tenant: &str, limits: &TenantLimits) -> Result<RateView, Refusal> {
        let now = Instant::now();
        let mut map = self.lock();
        let state = Self::state(&mut map, tenant, limits, now);
        if let Some(bucket) = &mut state.requests {
            bucket
                .take(1, now)
                .map_err(|retry_after| Refusal::Requests {
                    limit: bucket.capacity as u64,
                    retry_after,
                })?;
        }
        Ok(RateView {
            requests: state.requests.as_mut().map(|b| b.view(now)),
            tokens: state.tokens.as_mut().map(|b| b.view(now)),
        })
    }

    /// The rate-limit state of `tenant` now.
    pub fn view(&self, tenant: &str, limits: &TenantLimits) -> RateView {
        let now = Instant::now();
        let mut map = self.lock();
        let state = Self::state(&mut map, tenant, limits, now);
        RateView {
            requests: state.requests.as_mut().map(|b| b.view(now)),
            tokens: state.tokens.as_mut().map(|b| b.view(now)),
        }
    }

    /// Lets `sequences` sequences needing `tokens` tokens at most run for `tenant`, or refuses
    /// them (taking nothing). With `rate_limited` false (offline batches and jobs, which have
    /// their own size limits) only the sequence count applies.
    pub fn admit(
        self: &Arc<Self>,
        tenant: &str,
        limits: &TenantLimits,
        sequences: u32,
        tokens: u64,
        rate_limited: bool,
    ) -> Result<Admission, Refusal> {
        let now = Instant::now();
        let mut map = self.lock();
        let state = Self::state(&mut map, tenant, limits, now);
        let limit = state.limits.max_concurrent_sequences;
        if sequences > limit {
            return Err(Refusal::TooManySequences {
                needed: sequences,
                limit,
            });
        }
        if state.running.saturating_add(sequences) > limit {
            return Err(Refusal::Sequences {
                running: state.running,
                needed: sequences,
                limit,
            });
        }
        let mut charged = 0;
        if rate_limited && let Some(bucket) = &mut state.tokens {
            let limit = bucket.capacity as u64;
            if tokens > limit {
                return Err(Refusal::TooManyTokens {
                    needed: tokens,
                    limit,
                });
            }
            bucket
                .take(tokens, now)
                .map_err(|retry_after| Refusal::Tokens {
                    limit,
                    remaining: bucket.view(now).remaining,
                    needed: tokens,
                    retry_after,
                })?;
            charged = tokens;
        }
        state.running += sequences;
        Ok(Admission {
            limiter: Arc::clone(self),
            tenant: tenant.to_owned(),
            sequences,
            charged,
            used: None,
        })
    }

    fn release(&self, tenant: &str, sequences: u32, refund: u64) {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(state) = map.get_mut(tenant) {
            state.running = state.running.saturating_sub(sequences);
            if let Some(bucket) = &mut state.tokens {
                bucket.give_back(refund, now);
            }
        }
    }
}

/// Sequences let in for a tenant; dropping it ends them and gives back the tokens taken but
/// not used (all of them unless [`Admission::used`] said otherwise).
pub struct Admission {
    limiter: Arc<Limiter>,
    tenant: String,
    sequences: u32,
    charged: u64,
    used: Option<u64>,
}

impl Admission {
    /// Records how many tokens the sequences really used (prompt + generated).
    pub fn used(&mut self, tokens: u64) {
        self.used = Some(tokens);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // A request that never reported its use was cut short before generating: refund all.
        let refund = self.charged.saturating_sub(self.used.unwrap_or(0));
        self.limiter.release(&self.tenant, self.sequences, refund);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u64>, tpm: Option<u64>, sequences: u32) -> TenantLimits {
        TenantLimits {
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            max_concurrent_sequences: sequences,
            ..TenantLimits::default()
        }
    }

    #[test]
    fn a_bucket_refills_at_its_rate_and_says_when_to_retry() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(60, t0);
        assert!(b.take(60, t0).is_ok());
        let wait = b.take(2, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 2.0).abs() < 1e-9, "{wait:?}");
        assert!(b.take(2, t0 + Duration::from_secs(2)).is_ok());
        b.give_back(1000, t0 + Duration::from_secs(2));
        assert_eq!(b.view(t0 + Duration::from_secs(2)).remaining, 60);
    }

    #[test]
    fn concurrent_admissions_never_exceed_the_bucket() {
        let limiter = Arc::new(Limiter::default());
        let l = limits(None, Some(1_000), 10_000);
        let admitted: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|_| s.spawn(|| limiter.admit("a", &l, 1, 30, true).ok()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let count = admitted.iter().flatten().count();
        // 1,000 / 30 = 33, plus at most what refills while the threads run (well under 30).
        assert_eq!(count, 33);
        // Unused tokens come back when the admissions end.
        drop(admitted);
        assert!(limiter.admit("a", &l, 1, 990, true).is_ok());
    }

    #[test]
    fn sequences_are_counted_until_their_admission_ends() {
        let limiter = Arc::new(Limiter::default());
        let l = limits(None, None, 3);
        let two = limiter.admit("a", &l, 2, 0, true).unwrap();
        assert!(matches!(
            limiter.admit("a", &l, 2, 0, true),
            Err(Refusal::Sequences { running: 2, .. })
        ));
        // Another tenant has its own count.
        assert!(limiter.admit("b", &l, 3, 0, true).is_ok());
        drop(two);
        assert!(limiter.admit("a", &l, 3, 0, true).is_ok());
    }

    #[test]
    fn used_tokens_stay_spent_and_oversized_requests_are_refused_outright() {
        let limiter = Arc::new(Limiter::default());
        let l = limits(Some(2), Some(100), 10);
        let mut a = limiter.admit("a", &l, 1, 80, true).unwrap();
        a.used(50);
        drop(a);
        let view = limiter.view("a", &l).tokens.unwrap();
        assert!((50..=51).contains(&view.remaining), "{view:?}");
        assert!(matches!(
            limiter.admit("a", &l, 1, 101, true),
            Err(Refusal::TooManyTokens { .. })
        ));
        assert!(limiter.admit("a", &l, 1, 101, false).is_ok());
        assert!(limiter.request("a", &l).is_ok());
        assert!(limiter.request("a", &l).is_ok());
        assert!(matches!(
            limiter.request("a", &l),
            Err(Refusal::Requests { limit: 2, .. })
        ));
    }
}
