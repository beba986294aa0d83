//! The OpenAPI 3.1 description of the API: `docs/openapi.json`, compiled in and served at
//! `GET /api/v1/openapi.json`. It cannot drift unnoticed: `tests/api/openapi.rs` checks its paths
//! and methods against [`ROUTES`] (both ways) and its error codes against [`error_codes`], and
//! runs Schemathesis against a live dialgate, which validates real responses against it.

use super::error::ApiError;
use super::router::{Reply, json};
use hyper::StatusCode;

pub use super::router::ROUTES;

/// The document as committed in the repository.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// `GET /api/v1/openapi.json`.
pub fn reply() -> Reply {
    match serde_json::from_str::<serde_json::Value>(DOCUMENT) {
        Ok(v) => json(StatusCode::OK, &v),
        // Only a broken commit could get here; tests/api/openapi.rs parses the document.
        Err(e) => super::router::error(&ApiError::Internal(format!(
            "the OpenAPI document does not parse: {e}"
        ))),
    }
}

/// Every error code the API answers with, and its HTTP status: one sample of each variant.
pub fn error_codes() -> Vec<(&'static str, u16)> {
    samples()
        .iter()
        .map(|e| (e.code(), e.status().as_u16()))
        .collect()
}

/// One value of every [`ApiError`] variant.
fn samples() -> Vec<ApiError> {
    let s = String::new;
    vec![
        ApiError::Unauthenticated,
        ApiError::BadCredentials,
        ApiError::BadToken,
        ApiError::AuthThrottled(1),
        ApiError::Forbidden {
            client: s(),
            group: "",
        },
        ApiError::field("f", "m"),
        ApiError::BadJson(s()),
        ApiError::BadRequest(s()),
        ApiError::TooLarge(1),
        ApiError::UnsupportedMediaType {
            got: s(),
            expected: "",
        },
        ApiError::UnknownBot(s()),
        ApiError::OutboundDisabled(s()),
        ApiError::NoRoute {
            bot: s(),
            target: s(),
        },
        ApiError::RateLimited {
            bot: s(),
            limit: "",
            retry_after: 1,
        },
        ApiError::CallNotFound(s()),
        ApiError::CallEnded(s()),
        ApiError::NotFound(s()),
        ApiError::MethodNotAllowed {
            method: s(),
            path: s(),
            allowed: "",
        },
        ApiError::Internal(s()),
        ApiError::BodyTimeout(30),
        ApiError::AtCapacity(s()),
        ApiError::StoreUnavailable(s()),
        ApiError::RecognitionUnavailable {
            bot: s(),
            uses: s(),
            model: s(),
            reason: s(),
        },
        ApiError::ClusterUnavailable {
            reason: s(),
            retry_after: 2,
        },
        ApiError::OwnerUnreachable {
            id: s(),
            owner: s(),
            why: s(),
            retry_after: 2,
        },
    ]
}

/// Does nothing at run time: a new [`ApiError`] variant makes this match fail to compile,
/// which is the reminder to add it to [`samples`] (and so to the document, via the test).
#[allow(dead_code)]
fn every_variant_is_sampled(e: &ApiError) {
    use ApiError::*;
    match e {
        Unauthenticated
        | BadCredentials
        | BadToken
        | AuthThrottled(_)
        | Forbidden { .. }
        | InvalidField { .. }
        | BadJson(_)
        | BadRequest(_)
        | TooLarge(_)
        | BodyTimeout(_)
        | AtCapacity(_)
        | UnsupportedMediaType { .. }
        | UnknownBot(_)
        | OutboundDisabled(_)
        | NoRoute { .. }
        | RateLimited { .. }
        | CallNotFound(_)
        | CallEnded(_)
        | NotFound(_)
        | MethodNotAllowed { .. }
        | Internal(_)
        | StoreUnavailable(_)
        | RecognitionUnavailable { .. }
        | ClusterUnavailable { .. }
        | OwnerUnreachable { .. } => {}
    }
}
