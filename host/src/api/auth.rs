//! Authentication and authorization, in front of every route.
//!
//! Each route in [`super::routes`] carries a [`Policy`]. For anything but a public route the
//! middleware: reads `Authorization: Bearer <key>` (401 without one); resolves the key to a
//! [`Caller`] (401 if unknown, wrong, revoked or expired; argon2 runs once per key and
//! process, the digest compare after it is constant-time); checks the route's scopes (403);
//! counts the request against the tenant's requests per minute (429 with `Retry-After`);
//! charges the request to the key; and hands the handler the caller as an extension. Every
//! answer to an authenticated request carries OpenAI's `x-ratelimit-*` headers. Failures are
//! written to the audit log with the key's public id, never the key.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::tenancy::limits::BucketView;
use crate::tenancy::{AuthError, Caller, RateView, Refusal, Scope, Usage, keys};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Anyone (health and readiness probes).
    Public,
    /// Any valid key.
    AnyKey,
    /// A key with one of these scopes (`admin` has them all).
    AnyOf(&'static [Scope]),
    /// `/metrics`: public if the operator said so (`--public-metrics`), else admins only.
    Metrics,
}

impl Policy {
    /// The scopes a key needs under this policy (none: any key; `None`: no key at all).
    pub(super) fn scopes(self, public_metrics: bool) -> Option<&'static [Scope]> {
        match self {
            Policy::Public => None,
            Policy::Metrics if public_metrics => None,
            Policy::Metrics => Some(&[Scope::Admin]),
            Policy::AnyKey => Some(&[]),
            Policy::AnyOf(scopes) => Some(scopes),
        }
    }
}

/// The middleware: see the module documentation.
pub async fn authorize(
    State((state, policy)): State<(Arc<AppState>, Policy)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(scopes) = policy.scopes(state.public_metrics) else {
        return next.run(request).await;
    };
    let route = format!("{} {}", request.method(), request.uri().path());
    let caller = match authenticate(&state, request.headers()).await {
        Ok(caller) => caller,
        Err((actor, e)) => {
            state
                .tenancy
                .audit_failure(&actor, None, "auth.failure", &route, &e.to_string());
            return unauthorized(e).into_response();
        }
    };
    if !scopes.is_empty() && !scopes.iter().any(|&s| caller.allows(s)) {
        let needed = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>();
        state.tenancy.audit_failure(
            &caller.actor(),
            Some(&caller.tenant.id),
            "auth.forbidden",
            &route,
            &format!("needs {}", needed.join(" or ")),
        );
        return ApiError::forbidden(format!(
            "this key lacks the scope this route needs: {}",
            needed.join(" or ")
        ))
        .into_response();
    }
    let tenant = &caller.tenant;
    let view = match state.tenancy.limiter().request(&tenant.id, &tenant.limits) {
        Ok(view) => view,
        Err(refusal) => {
            charge(
                &state,
                &caller,
                Usage {
                    rate_limited: 1,
                    ..Usage::default()
                },
            );
            let view = state.tenancy.limiter().view(&tenant.id, &tenant.limits);
            let mut response = ApiError::from(refusal).into_response();
            rate_headers(response.headers_mut(), &view);
            return response;
        }
    };
    charge(
        &state,
        &caller,
        Usage {
            requests: 1,
            ..Usage::default()
        },
    );
    let (tenant_id, key_id, limits) = (
        tenant.id.clone(),
        caller.key_id.clone(),
        tenant.limits.clone(),
    );
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    // The token bucket after the handler charged it (the request bucket as of admission).
    let after = state.tenancy.limiter().view(&tenant_id, &limits);
    let view = RateView {
        requests: view.requests,
        tokens: after.tokens,
    };
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        // The handler's own refusal: the token bucket or the sequence limit.
        let usage = Usage {
            rate_limited: 1,
            ..Usage::default()
        };
        state.tenancy.account(&tenant_id, &key_id, &usage);
    }
    rate_headers(response.headers_mut(), &view);
    response
}

/// The caller behind the request's bearer key, or who to blame (the key's public id when it
/// has the key format) and why not.
async fn authenticate(
    state: &Arc<AppState>,
    headers: &HeaderMap,
) -> Result<Caller, (String, AuthError)> {
    let anonymous = || "anonymous".to_owned();
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or((anonymous(), AuthError::Missing))?;
    let key = bearer(value).ok_or((anonymous(), AuthError::Malformed))?;
    let actor = keys::parse(&key).map_or_else(anonymous, |p| keys::visible_prefix(p.id));
    let tenancy = Arc::clone(&state.tenancy);
    tokio::task::spawn_blocking(move || tenancy.authenticate(&key))
        .await
        .map_err(|_| (actor.clone(), AuthError::Invalid))?
        .map_err(|e| (actor, e))
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, per RFC 9110).
fn bearer(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn unauthorized(e: AuthError) -> Response {
    let mut response = ApiError::unauthorized(e.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn charge(state: &AppState, caller: &Caller, usage: Usage) {
    state
        .tenancy
        .account(&caller.tenant.id, &caller.key_id, &usage);
}

/// OpenAI's rate-limit headers for whichever buckets the tenant has.
fn rate_headers(headers: &mut HeaderMap, view: &RateView) {
    for (what, bucket) in [("requests", view.requests), ("tokens", view.tokens)] {
        let Some(BucketView {
            limit,
            remaining,
            reset,
        }) = bucket
        else {
            continue;
        };
        for (name, value) in [
            ("limit", limit.to_string()),
            ("remaining", remaining.to_string()),
            ("reset", seconds(reset)),
        ] {
            let name = HeaderName::try_from(format!("x-ratelimit-{name}-{what}"))
                .expect("a valid header name");
            headers.insert(
                name,
                HeaderValue::try_from(value).expect("digits are a valid header value"),
            );
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal.retry_after() {
            None => ApiError::bad_request("request_too_large", message),
            Some(after) => ApiError::rate_limited(message, after),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(&v("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer(&v("bearer abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer(&v("Basic abc")), None);
        assert_eq!(bearer(&v("Bearer ")), None);
        assert_eq!(bearer(&v("abc")), None);
    }
}
