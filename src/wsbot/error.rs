//! Errors at the WebSocket bot boundary.

/// Why a WebSocket bot session could not be opened or used.
///
/// Every variant raised while opening the session means the bot is unreachable: the call must
/// fail before the person is called ([`WsBotError::is_bot_unreachable`]).
#[derive(Debug, thiserror::Error)]
pub enum WsBotError {
    /// The upgrade request could not be built (e.g. a token that is not a valid header value).
    #[error("cannot build the WebSocket request for {url}: {detail}")]
    Request {
        /// Bot URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// TCP, TLS or the HTTP upgrade failed (refused, 401, certificate, ...).
    #[error("cannot connect to WebSocket bot {url}: {detail}")]
    Connect {
        /// Bot URL.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// No answer in time (connection, `session.accepted`).
    #[error("WebSocket bot {url} did not answer within {ms} ms ({stage})")]
    Timeout {
        /// Bot URL.
        url: String,
        /// Which step timed out.
        stage: &'static str,
        /// The bound that ran out.
        ms: u64,
    },
    /// The bot answered `session.initiate` (or `session.resume`) with `session.error`.
    #[error("WebSocket bot refused the session: {reason}")]
    Rejected {
        /// The bot's `reason`.
        reason: String,
    },
    /// The socket closed before the bot accepted the session.
    #[error("WebSocket bot {url} closed the connection before accepting the session")]
    ClosedDuringHandshake {
        /// Bot URL.
        url: String,
    },
    /// The session has already ended (after a hang-up or after giving up reconnecting).
    #[error("the WebSocket bot session has ended")]
    Ended,
}

impl WsBotError {
    /// True for every failure to open the session: the lead fails the call like an unreachable
    /// bot (before answer the person is not called).
    pub fn is_bot_unreachable(&self) -> bool {
        !matches!(self, WsBotError::Ended)
    }

    /// Status reported for the call when opening the session failed (the `error` reasonCode, as
    /// for a SIP bot that rejected or did not answer its INVITE).
    pub fn reason_code(&self) -> &'static str {
        match self {
            WsBotError::Ended => "bot-disconnected",
            _ => "error",
        }
    }
}

/// Why one incoming frame was ignored. The session goes on; the frame is logged and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON without a string `type` (AC) / `event` (media-stream).
    #[error("message has no {0} field")]
    NoType(&'static str),
    /// A message type dialgate does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A required field is absent or has the wrong type.
    #[error("{kind}: missing or malformed field {field}")]
    MissingField {
        /// Message type.
        kind: String,
        /// Field name.
        field: &'static str,
    },
    /// Audio that is not valid base64.
    #[error("{kind}: audio is not valid base64: {detail}")]
    BadBase64 {
        /// Message type.
        kind: String,
        /// Decoder's message.
        detail: String,
    },
    /// A media format dialgate does not handle.
    #[error("unsupported media format {0:?}")]
    UnsupportedFormat(String),
    /// Larger than the session's message limit.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    Oversized {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A binary WebSocket frame (both protocols are JSON text).
    #[error("binary frame of {0} bytes (the protocol is JSON text)")]
    Binary(usize),
}
