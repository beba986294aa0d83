//! Behaviour of a simulated SIP peer (carrier callee or bot media endpoint) and what it logs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::audio::load_wav;
use super::error::SimError;
use super::g711::Codec;

/// How the UAS answers an INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 OK (with SDP) after this delay.
    After(Duration),
    /// A final error response (486, 603, ...) after this delay.
    Reject {
        /// SIP status code (400..=699).
        code: u16,
        /// Delay before the response.
        after: Duration,
    },
    /// Never answer (until CANCEL, `hangup`, the `max_call` bound or shutdown).
    Never,
}

/// When the UAS hangs up once answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    /// BYE this long after the played audio has been sent (after answer if nothing is played).
    AfterAudio(Duration),
    /// Wait for the peer's BYE (or `hangup`, the `max_call` bound, shutdown).
    WaitForBye,
}

/// Options of [`super::SimCallee`] / [`super::SimBot`].
#[derive(Debug, Clone)]
pub struct SimCalleeOptions {
    /// SIP listen address (UDP, loopback only; port 0 picks one).
    pub bind: SocketAddr,
    /// Send 180 Ringing before the final answer.
    pub ring: bool,
    /// Final answer.
    pub answer: Answer,
    /// Audio played after answer (8 kHz samples), then silence. Empty = silence only.
    pub play: Arc<Vec<i16>>,
    /// When to hang up.
    pub hangup: Hangup,
    /// Safety bound: a call (ringing or answered) is ended after this long.
    pub max_call: Duration,
    /// At most this much received audio is recorded per call.
    pub record_limit: Duration,
    /// User part of the Contact.
    pub user: String,
    /// RFC 3261 T1 (None = 500 ms); tests may shorten it.
    pub t1: Option<Duration>,
}

impl SimCalleeOptions {
    /// A person on a carrier trunk: 180, answer after 1 s, BYE 2 s after its greeting.
    pub fn callee() -> Self {
        SimCalleeOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ring: true,
            answer: Answer::After(Duration::from_secs(1)),
            play: Arc::new(Vec::new()),
            hangup: Hangup::AfterAudio(Duration::from_secs(2)),
            max_call: Duration::from_secs(300),
            record_limit: Duration::from_secs(120),
            user: "callee".into(),
            t1: None,
        }
    }

    /// The bot's media endpoint: 200 at once, no 180, never hangs up unless told.
    pub fn bot() -> Self {
        SimCalleeOptions {
            ring: false,
            answer: Answer::After(Duration::ZERO),
            hangup: Hangup::WaitForBye,
            user: "bot".into(),
            ..Self::callee()
        }
    }

    /// Play this WAV (8 kHz mono 16-bit) after answer.
    pub fn with_wav(mut self, path: impl AsRef<Path>) -> Result<Self, SimError> {
        self.play = Arc::new(load_wav(path)?);
        Ok(self)
    }

    /// Builder-style setters for the common cases.
    pub fn with_answer(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }

    /// See [`SimCalleeOptions::hangup`].
    pub fn with_hangup(mut self, hangup: Hangup) -> Self {
        self.hangup = hangup;
        self
    }

    /// See [`SimCalleeOptions::bind`].
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }
}

/// One thing the simulated UAS saw or did.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// When (monotonic).
    pub at: Instant,
    /// Call-ID of the call it belongs to.
    pub call_id: String,
    /// What happened.
    pub kind: SimEventKind,
}

/// Kinds of [`SimEvent`].
#[derive(Debug, Clone, PartialEq)]
pub enum SimEventKind {
    /// An INVITE arrived. `headers` holds From, To, P-Asserted-Identity and every X-… header.
    Invite {
        /// Request-URI.
        request_uri: String,
        /// Headers of interest, `(name, value)`, in message order.
        headers: Vec<(String, String)>,
        /// The SDP offer (empty if none).
        sdp: String,
    },
    /// The sim sent a response to the INVITE (180, 200, 486, ...).
    Sent {
        /// Status code.
        code: u16,
    },
    /// The ACK for our 200 arrived.
    Ack,
    /// The call ended with BYE.
    Bye {
        /// True if the peer sent it, false if the sim did.
        from_remote: bool,
    },
    /// The peer CANCELled before the answer.
    Cancel,
    /// Final media counters of the call (always the call's last event).
    RtpStats {
        /// RTP packets sent.
        sent: u64,
        /// RTP packets received.
        received: u64,
    },
}

impl SimEvent {
    /// Value of a recorded INVITE header (case-insensitive name), if this is an Invite event.
    pub fn header(&self, name: &str) -> Option<&str> {
        match &self.kind {
            SimEventKind::Invite { headers, .. } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// A snapshot of one call's media.
#[derive(Debug, Clone)]
pub struct SimCall {
    /// Call-ID.
    pub call_id: String,
    /// Codec chosen from the offer (None if the call was never answered).
    pub codec: Option<Codec>,
    /// Where the sim sends RTP.
    pub remote_rtp: Option<SocketAddr>,
    /// The sim's RTP socket.
    pub local_rtp: Option<SocketAddr>,
    /// RTP packets sent so far.
    pub rtp_sent: u64,
    /// RTP packets received so far.
    pub rtp_received: u64,
    /// Decoded received audio (8 kHz).
    pub recorded: Vec<i16>,
    /// The call is over.
    pub ended: bool,
}
