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

/// Dispatches one request and counts it.
pub async fn handle(state: Arc<ApiState>, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (route, result): (&str, Result<Reply, ApiError>) = match segments.as_slice() {
        ["healthz"] => (
            "/healthz",
            match method {
                Method::GET => Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
                _ => Err(not_allowed(&method, &path, "GET")),
            },
        ),
        ["metrics"] => (
            "/metrics",
            match method {
                Method::GET => Ok(handlers::metrics(&state).await),
                _ => Err(not_allowed(&method, &path, "GET")),
            },
        ),
        ["oauth", "token"] => (
            "/oauth/token",
            match method {
                Method::POST => handlers::token(&state, peer, req).await,
                _ => Err(not_allowed(&method, &path, "POST")),
            },
        ),
        ["api", "v1", "status"] => (
            "/api/v1/status",
            match method {
                Method::GET => handlers::status(&state, peer, &req).await,
                _ => Err(not_allowed(&method, &path, "GET")),
            },
        ),
        ["api", "v1", "actions", "dialout"] => (
            "/api/v1/actions/dialout",
            match method {
                Method::POST => handlers::dialout(&state, peer, req).await,
                _ => Err(not_allowed(&method, &path, "POST")),
            },
        ),
        ["api", "v1", "calls"] => (
            "/api/v1/calls",
            match method {
                Method::GET => handlers::list_calls(&state, peer, &req).await,
                _ => Err(not_allowed(&method, &path, "GET")),
            },
        ),
        ["api", "v1", "calls", id] => {
            let id = id.to_string();
            (
                "/api/v1/calls/{id}",
                match method {
                    Method::GET => handlers::get_call(&state, peer, &req, &id).await,
                    Method::DELETE => handlers::hangup(&state, peer, &req, &id).await,
                    _ => Err(not_allowed(&method, &path, "GET, DELETE")),
                },
            )
        }
        _ => (
            "unknown",
            Err(ApiError::NotFound(format!("{method} {path}"))),
        ),
    };
    let reply = match result {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, ApiError::Internal(_)) {
                tracing::error!(%route, error = %e, "request failed");
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
