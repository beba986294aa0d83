//! The API's error boundary: every failure knows its HTTP status and its
//! machine-readable code, and renders as `{"error":{"code","message"[,"field"]}}`.

use hyper::StatusCode;
use serde_json::json;

/// Everything the HTTP API can answer with other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "authentication required: use HTTP Basic (client_id:client_secret) or a Bearer token from POST /oauth/token"
    )]
    Unauthenticated,
    #[error("invalid client credentials")]
    BadCredentials,
    #[error("the access token is invalid or has expired; request a new one from POST /oauth/token")]
    BadToken,
    #[error("too many failed authentication attempts from this address; retry in {0} s")]
    AuthThrottled(u64),
    #[error("API client `{client}` is not in the `{group}` group")]
    Forbidden { client: String, group: &'static str },
    #[error("{message}")]
    InvalidField { field: String, message: String },
    #[error("request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    #[error("dialgate is at capacity ({0}); retry later")]
    AtCapacity(String),
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("unsupported content type `{got}`; send `{expected}`")]
    UnsupportedMediaType { got: String, expected: &'static str },
    #[error("unknown bot `{0}`")]
    UnknownBot(String),
    #[error("outbound calling is disabled for bot `{0}` (set bots[].outbound.enabled: true)")]
    OutboundDisabled(String),
    #[error("no routing rule of type `call` matches bot `{bot}` and target `{target}`")]
    NoRoute { bot: String, target: String },
    #[error("bot `{bot}` is over its {limit}; retry after {retry_after} s")]
    RateLimited {
        bot: String,
        limit: &'static str,
        retry_after: u64,
    },
    #[error("no call with conversationId `{0}`")]
    CallNotFound(String),
    #[error("call `{0}` has already ended")]
    CallEnded(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method {method} is not allowed on {path}; allowed: {allowed}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: &'static str,
    },
    #[error(
        "bot `{bot}` requires speech recognition ({uses}) but no speech model is installed ({reason}); install {model} with scripts/setup-model, or set outbound.require_recognition: false to dial without it"
    )]
    RecognitionUnavailable {
        bot: String,
        uses: String,
        model: String,
        reason: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// The shared database (cluster mode) cannot be reached; nothing was accepted.
    #[error("the call store is unavailable ({0}); nothing was accepted, retry later")]
    StoreUnavailable(String),
    /// Cluster mode: Redis (the bots' shared limits, the live-call registry) cannot be asked,
    /// so no dialout is admitted; calls in progress go on.
    #[error(
        "the cluster's shared state is unavailable ({reason}); new dialouts are refused until it is back (calls in progress go on); retry after {retry_after} s"
    )]
    ClusterUnavailable { reason: String, retry_after: u64 },
    /// Cluster mode: the call is live on another instance that did not take the hang-up.
    #[error("call `{id}` is live on instance `{owner}`, which {why}; retry after {retry_after} s")]
    OwnerUnreachable {
        id: String,
        owner: String,
        why: String,
        retry_after: u64,
    },
}

impl ApiError {
    /// The HTTP status this error is sent with.
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            Unauthenticated | BadCredentials | BadToken => StatusCode::UNAUTHORIZED,
            AuthThrottled(_) | RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Forbidden { .. } | OutboundDisabled(_) => StatusCode::FORBIDDEN,
            InvalidField { .. } | BadJson(_) | BadRequest(_) => StatusCode::BAD_REQUEST,
            TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AtCapacity(_) => StatusCode::SERVICE_UNAVAILABLE,
            UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UnknownBot(_) | CallNotFound(_) | NotFound(_) => StatusCode::NOT_FOUND,
            NoRoute { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            CallEnded(_) => StatusCode::CONFLICT,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RecognitionUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ClusterUnavailable { .. } | OwnerUnreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable machine-readable code in the JSON body.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            Unauthenticated => "unauthenticated",
            BadCredentials => "invalid_client",
            BadToken => "invalid_token",
            AuthThrottled(_) => "auth_throttled",
            Forbidden { .. } => "forbidden",
            InvalidField { .. } => "invalid_field",
            BadJson(_) => "invalid_json",
            BadRequest(_) => "bad_request",
            TooLarge(_) => "body_too_large",
            BodyTimeout(_) => "body_timeout",
            AtCapacity(_) => "at_capacity",
            UnsupportedMediaType { .. } => "unsupported_media_type",
            UnknownBot(_) => "unknown_bot",
            OutboundDisabled(_) => "outbound_disabled",
            NoRoute { .. } => "no_route",
            RateLimited { .. } => "rate_limited",
            CallNotFound(_) => "call_not_found",
            CallEnded(_) => "call_ended",
            NotFound(_) => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            Internal(_) => "internal",
            RecognitionUnavailable { .. } => "recognition_unavailable",
            StoreUnavailable(_) => "store_unavailable",
            ClusterUnavailable { .. } => "cluster_unavailable",
            OwnerUnreachable { .. } => "owner_unreachable",
        }
    }

    /// Seconds for a `Retry-After` header, when the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::AuthThrottled(s) => Some(*s),
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            ApiError::AtCapacity(_) => Some(5),
            // A few seconds: the pool retries its connection on the next request.
            ApiError::StoreUnavailable(_) => Some(5),
            ApiError::ClusterUnavailable { retry_after, .. }
            | ApiError::OwnerUnreachable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The reason label used for the rejected-dialouts metric.
    pub fn metric_reason(&self) -> &'static str {
        self.code()
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut err = json!({"code": self.code(), "message": self.to_string()});
        if let ApiError::InvalidField { field, .. } = self {
            err["field"] = json!(field);
        }
        // What is missing and what to run, for a dialer's operator to act on.
        if let ApiError::RecognitionUnavailable { model, .. } = self {
            err["missingModel"] = json!(model);
            err["fix"] = json!("scripts/setup-model");
        }
        json!({ "error": err })
    }

    /// Shorthand for a field validation error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::StoreUnavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}
