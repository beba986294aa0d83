//! Request routing, body limits and the uniform JSON answer shape.

use super::error::ApiError;
use super::{ApiState, handlers};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

/// The answer type of every handler.
pub type Reply = Response<Full<Bytes>>;

/// A successful JSON answer.
pub fn json(status: StatusCode, v: &serde_json::Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Renders an error in the uniform shape, with `Retry-After` when it has one.
pub fn error(e: &ApiError) -> Reply {
    let mut r = json(e.status(), &e.body());
    if let Some(s) = e.retry_after()
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    if e.status() == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"dialgate\", Bearer"),
        );
    }
    r
}

/// Reads the body up to `limit` bytes after checking its content type.
pub async fn read_body(
    req: Request<Incoming>,
    expected: &'static str,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<(hyper::http::request::Parts, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let ct = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case(expected) {
        return Err(ApiError::UnsupportedMediaType {
            got: if ct.is_empty() {
                "(none)".into()
            } else {
                ct.to_owned()
            },
            expected,
        });
    }
    if let Some(len) = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(ApiError::TooLarge(limit));
    }
    // A body trickled in byte by byte must not hold the connection forever.
    let bytes = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| ApiError::BodyTimeout(timeout.as_secs()))?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::TooLarge(limit)
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {e}"))
            }
        })?
        .to_bytes();
    Ok((parts, bytes))
}

fn not_allowed(method: &Method, path: &str, allowed: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_owned(),
        allowed,
    }
}

/// Every route: its path template and the methods it answers (as sent in `Allow`). Dispatch
/// matches paths against this table, 404/405 answers follow from it, and the OpenAPI document
/// (`docs/openapi.json`) is checked against it by the tests, in both directions.
pub const ROUTES: &[(&str, &str)] = &[
    ("/healthz", "GET"),
    ("/metrics", "GET"),
    ("/oauth/token", "POST"),
    ("/api/v1/openapi.json", "GET"),
    ("/api/v1/status", "GET"),
    ("/api/v1/actions/dialout", "POST"),
    ("/api/v1/calls", "GET"),
    ("/api/v1/calls/{id}", "GET, DELETE"),
];

/// The route whose template matches `path` (a trailing `/` is ignored), its allowed methods,
/// and the value of its `{…}` segment if it has one.
pub fn match_route(path: &str) -> Option<(&'static str, &'static str, Option<String>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    ROUTES.iter().find_map(|(template, allowed)| {
        let parts: Vec<&str> = template.split('/').skip(1).collect();
        if parts.len() != segments.len() {
            return None;
        }
        let mut param = None;
        for (part, seg) in parts.iter().zip(&segments) {
            if part.starts_with('{') && !seg.is_empty() {
                param = Some((*seg).to_owned());
            } else if part != seg {
                return None;
            }
        }
        Some((*template, *allowed, param))
    })
}

/// Dispatches one request and counts it.
pub async fn handle(state: Arc<ApiState>, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (route, result): (&str, Result<Reply, ApiError>) = match match_route(&path) {
        None => (
            "unknown",
            Err(ApiError::NotFound(format!("{method} {path}"))),
        ),
        Some((route, allowed, param)) => {
            let id = param.unwrap_or_default();
            let result = match (route, &method) {
                ("/healthz", &Method::GET) => {
                    Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
                }
                ("/metrics", &Method::GET) => Ok(handlers::metrics(&state).await),
                ("/oauth/token", &Method::POST) => handlers::token(&state, peer, req).await,
                ("/api/v1/openapi.json", &Method::GET) => Ok(super::openapi::reply()),
                ("/api/v1/status", &Method::GET) => handlers::status(&state, peer, &req).await,
                ("/api/v1/actions/dialout", &Method::POST) => {
                    handlers::dialout(&state, peer, req).await
                }
                ("/api/v1/calls", &Method::GET) => handlers::list_calls(&state, peer, &req).await,
                ("/api/v1/calls/{id}", &Method::GET) => {
                    handlers::get_call(&state, peer, &req, &id).await
                }
                ("/api/v1/calls/{id}", &Method::DELETE) => {
                    handlers::hangup(&state, peer, &req, &id).await
                }
                _ => Err(not_allowed(&method, &path, allowed)),
            };
            (route, result)
        }
    };
    let reply = match result {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, ApiError::Internal(_)) {
                tracing::error!(%route, error = %e, "request failed");
            } else if matches!(e, ApiError::StoreUnavailable(_)) {
                tracing::warn!(%route, error = %e, "request refused: store unavailable");
            } else {
                tracing::debug!(%route, %peer, error = %e, "request refused");
            }
            if route == "/api/v1/actions/dialout" {
                state.metrics.rejected(e.metric_reason());
            }
            let mut r = error(&e);
            if let ApiError::MethodNotAllowed { allowed, .. } = e {
                r.headers_mut()
                    .insert(hyper::header::ALLOW, HeaderValue::from_static(allowed));
            }
            r
        }
    };
    state.metrics.http(route, reply.status().as_u16());
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_the_route_table() {
        // 1. Fixed paths, with or without a trailing slash.
        assert_eq!(
            match_route("/api/v1/status").map(|r| r.0),
            Some("/api/v1/status")
        );
        assert_eq!(
            match_route("/api/v1/calls/").map(|r| r.0),
            Some("/api/v1/calls")
        );
        // 2. A parameter segment is captured.
        assert_eq!(
            match_route("/api/v1/calls/abc-1"),
            Some(("/api/v1/calls/{id}", "GET, DELETE", Some("abc-1".into())))
        );
        // 3. Anything else is no route.
        assert_eq!(match_route("/"), None);
        assert_eq!(match_route("/api/v1/calls/a/b"), None);
        assert_eq!(match_route("/api/v2/status"), None);
    }
}
