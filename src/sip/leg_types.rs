//! Public types of a leg: what to dial, what happens, and the handle to end it.

use tokio::sync::{mpsc, oneshot};

use super::endpoint::Transport;
use super::extensions::Extensions;

/// One outbound INVITE to place (carrier trunk or bot).
#[derive(Debug, Clone, Default)]
pub struct OutboundCall {
    /// Request-URI, `sip:` or `sips:` (e.g. `sip:+15551234567@carrier.example`).
    pub request_uri: String,
    /// From user part (caller ID).
    pub from_user: String,
    /// From host part.
    pub from_host: String,
    /// From display name.
    pub from_display: Option<String>,
    /// To URI. rsipstack 0.7.14 always writes To = Request-URI; when they differ this is only
    /// logged (see HANDOFF).
    pub to_uri: String,
    /// Outbound proxy `(host:port, transport)`, sent as a preloaded `Route: <sip:host:port;lr>`.
    pub proxy: Option<(String, Transport)>,
    /// Second proxy tried only after 503/408/transport error before any provisional response.
    pub backup_proxy: Option<(String, Transport)>,
    /// A proxy given by domain name is located by RFC 3263 (`sip::dns`); `true` = its transport
    /// was not configured, so NAPTR may choose it. Literal IPs are used as written.
    pub naptr: bool,
    /// Extra headers (X-…, P-Asserted-Identity), added verbatim.
    pub headers: Vec<(String, String)>,
    /// Digest credentials `(username, password)` answered once to 401/407.
    pub credentials: Option<(String, String)>,
    /// SDP offer (always sent in the INVITE: the automatic ACK carries no SDP).
    pub sdp_offer: String,
    /// Call-ID to use; generated when `None`.
    pub call_id: Option<String>,
    /// Conversation the leg belongs to (logged on every span).
    pub conversation_id: String,
    /// Session timers and reliable provisionals (carrier trunks; none for the bot leg).
    pub extensions: Extensions,
    /// How the trunk's TLS server is verified (`transport: tls` trunks); `None` = rsipstack's
    /// own dialling (bot legs).
    pub tls: Option<super::tls_client::TrunkTlsSettings>,
}

/// How a leg failed before answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A final non-2xx response came back (code in `Failed::code`).
    Response,
    /// No final response in time (Timer B): code 408.
    Timeout,
    /// The request could not be sent (connection refused, TLS failure, bad target).
    Transport,
    /// We cancelled it (CANCEL, or an answer that raced the CANCEL and was ended with BYE).
    Cancelled,
}

/// What happens on a leg, in order. [`LegEvent::Terminated`] is always the last event.
#[derive(Debug)]
pub enum LegEvent {
    /// 1xx other than 100 (ringing, session progress).
    Provisional {
        /// Status code.
        code: u16,
        /// Early-media SDP, if any.
        sdp: Option<String>,
    },
    /// 2xx received and ACKed.
    Answered {
        /// Status code.
        code: u16,
        /// The peer's SDP answer (empty if the peer sent none).
        sdp: String,
    },
    /// Never answered.
    Failed {
        /// Final SIP status, if one was received (408 for a timeout).
        code: Option<u16>,
        /// Reason phrase or error text.
        reason: String,
        /// Classification.
        kind: FailureKind,
    },
    /// The peer sent BYE after answer (already answered 200).
    RemoteBye,
    /// The peer sent a re-INVITE (or UPDATE). Reply with `Some(answer_sdp)` for 200, `None` for
    /// 488. An empty `sdp` is an offer-less re-INVITE: the reply must then be an offer.
    ReInvite {
        /// The peer's SDP.
        sdp: String,
        /// Where to send the answer.
        reply: oneshot::Sender<Option<String>>,
    },
    /// The dialog is gone (rsipstack forgot it); no more events.
    Terminated,
    /// The final response to a REFER sent with [`LegHandle::refer`] (`None`: none came, or it
    /// could not be sent; `reason` says what happened).
    ReferAnswered {
        /// Status code.
        code: Option<u16>,
        /// Reason phrase or error text.
        reason: String,
    },
    /// A NOTIFY of a REFER's subscription (`Event: refer`): the status code of its
    /// `message/sipfrag` body (`SIP/2.0 200 OK` → 200). Already answered 200.
    ReferNotify {
        /// The sipfrag's status code.
        code: u16,
    },
    /// The session timer (RFC 4028) as it stands after the 2xx, a refresh, or the peer's
    /// refresh; `None` = the session does not expire. Comes after `Answered`.
    SessionTimer(Option<super::extensions::Negotiated>),
}

/// A leg's event stream, [`LegEvent`]s in order until [`LegEvent::Terminated`].
///
/// The events travel boxed: tokio allocates a channel's slots 32 at a time and keeps that
/// block for the channel's life, so a leg's channel costs 32 pointers (256 B) for the call's
/// whole duration instead of 32 events (~1.3 KiB); a leg sends only a handful of events.
#[derive(Debug)]
pub struct LegEvents(mpsc::Receiver<Box<LegEvent>>);

impl LegEvents {
    /// A stream fed by `tx`.
    pub(crate) fn channel() -> (mpsc::Sender<Box<LegEvent>>, LegEvents) {
        // 32 = one block: the leg never has more than a few events in flight.
        let (tx, rx) = mpsc::channel(32);
        (tx, LegEvents(rx))
    }

    /// The next event; `None` once the leg's task is gone.
    pub async fn recv(&mut self) -> Option<LegEvent> {
        self.0.recv().await.map(|ev| *ev)
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Result<LegEvent, mpsc::error::TryRecvError> {
        self.0.try_recv().map(|ev| *ev)
    }
}

/// In-dialog requests for the leg's task. Ending the leg is not one: it is the `end` token
/// of [`LegHandle`], which can neither fill nor be lost.
#[derive(Debug)]
pub(crate) enum Command {
    /// REFER on the established dialog (`Refer-To`, `Referred-By`, extra headers).
    Refer {
        refer_to: String,
        referred_by: String,
        headers: Vec<(String, String)>,
    },
    /// Send a session refresh (UPDATE, or re-INVITE when the peer lacks UPDATE).
    RefreshSession,
    /// An in-dialog INFO with this content type and body (only once the leg is answered).
    Info { content_type: String, body: Vec<u8> },
}

/// Controls one leg. Dropping it does not end the call; call [`LegHandle::hangup`].
#[derive(Debug, Clone)]
pub struct LegHandle {
    pub(crate) id: u64,
    pub(crate) call_id: String,
    /// Boxed: a channel's first block has 32 slots whatever its bound, and a REFER is 72
    /// bytes inline (2.3 KiB per leg for its life, against 256 bytes).
    pub(crate) cmd: mpsc::Sender<Box<Command>>,
    /// Cancelled to end the leg (CANCEL before the answer, BYE after): CANCEL, BYE and hang-up
    /// all mean the same to the leg's task, and a token is one flag that no burst of other
    /// commands can crowd out.
    pub(crate) end: tokio_util::sync::CancellationToken,
}

/// Commands that may wait for the leg's task. It takes each at once except while a REFER's
/// transaction runs (up to Timer F); the call sends a handful per call (one REFER, a refresh
/// every half session interval, the bot's `sendMetaData` INFOs), so 32 only fill when a bot
/// floods INFOs: those are then dropped and counted (`queue_full{queue="leg_commands"}`),
/// never the end of the leg.
pub(crate) const COMMAND_BOUND: usize = 32;

impl LegHandle {
    /// CANCEL while early. If a 200 races the CANCEL it is ACKed then ended with BYE (reported
    /// as `Failed{kind: Cancelled}`, never `Answered`). After answer it ends the call with BYE.
    pub fn cancel(&self) {
        self.end_leg();
    }
    /// BYE once answered. Before the answer it ends the leg with CANCEL (like `cancel` and
    /// `hangup`), so a late `bye()` from a racing caller still stops the call.
    pub fn bye(&self) {
        self.end_leg();
    }
    /// CANCEL or BYE, whichever fits the leg's state.
    pub fn hangup(&self) {
        self.end_leg();
    }
    /// The one way the three above end the leg: its task picks CANCEL or BYE by its state.
    fn end_leg(&self) {
        self.end.cancel();
    }

    fn send(&self, cmd: Command) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.cmd.try_send(Box::new(cmd)) {
            let what = match *cmd {
                Command::Refer { .. } => "a REFER",
                Command::RefreshSession => "a session refresh",
                Command::Info { .. } => "an INFO",
            };
            crate::overflow::dropped(crate::overflow::Queue::LegCommands, what);
        }
    }
    /// Sends REFER on the established dialog (RFC 3515): `refer_to` and `referred_by` are URIs
    /// (written in angle brackets), `headers` go verbatim. The outcome comes back as
    /// [`LegEvent::ReferAnswered`] and [`LegEvent::ReferNotify`]s. Before answer it does
    /// nothing: a REFER needs a dialog.
    pub fn refer(&self, refer_to: &str, referred_by: &str, headers: Vec<(String, String)>) {
        self.send(Command::Refer {
            refer_to: refer_to.to_owned(),
            referred_by: referred_by.to_owned(),
            headers,
        });
    }

    /// Refresh the session (RFC 4028) once answered; ignored before.
    pub fn refresh_session(&self) {
        self.send(Command::RefreshSession);
    }

    /// Sends an in-dialog INFO (e.g. the bot's `sendMetaData` as `application/json`) once the
    /// leg is answered; before the answer it is dropped (it never ends the leg). The answer
    /// is logged.
    pub fn info(&self, content_type: &str, body: Vec<u8>) {
        self.send(Command::Info {
            content_type: content_type.to_owned(),
            body,
        });
    }
    /// The Call-ID of the (first) INVITE.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }
    /// Process-unique leg number.
    pub fn id(&self) -> u64 {
        self.id
    }
}
