//! One incoming INVITE of a [`super::SimCallee`]: ring, answer or reject, media, hang-up.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt as _;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::audio::SAMPLE_RATE;
use super::options::{Answer, Hangup, SimCalleeOptions, SimEvent, SimEventKind};
use super::rtp::{self, MediaState};
use super::sdp;

/// How long the sim waits for its own BYE's answer before forgetting the dialog.
const BYE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an INVITE transaction may linger after the call's end (Timer H is 32 s).
const TX_LINGER: Duration = Duration::from_secs(40);

pub(super) struct CallEntry {
    pub(super) call_id: String,
    pub(super) media: Arc<MediaState>,
    pub(super) hangup: CancellationToken,
    pub(super) codec: Option<super::g711::Codec>,
    pub(super) remote_rtp: Option<SocketAddr>,
    pub(super) local_rtp: Option<SocketAddr>,
    pub(super) ended: bool,
}

pub(super) struct Shared {
    pub(super) opts: SimCalleeOptions,
    pub(super) events: Mutex<Vec<SimEvent>>,
    pub(super) calls: Mutex<Vec<CallEntry>>,
    pub(super) changed: watch::Sender<u64>,
    pub(super) cancel: CancellationToken,
}

impl Shared {
    pub(super) fn push(&self, call_id: &str, kind: SimEventKind) {
        tracing::debug!(%call_id, ?kind, "sim event");
        if let Ok(mut ev) = self.events.lock() {
            ev.push(SimEvent {
                at: Instant::now(),
                call_id: call_id.to_string(),
                kind,
            });
        }
        self.changed.send_modify(|n| *n += 1);
    }

    pub(super) fn with_call(&self, call_id: &str, f: impl FnOnce(&mut CallEntry)) {
        if let Ok(mut calls) = self.calls.lock()
            && let Some(c) = calls.iter_mut().rev().find(|c| c.call_id == call_id)
        {
            f(c);
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Headers recorded in the Invite event: From, To, P-Asserted-Identity, X-*.
fn headers_of_interest(req: &rsipstack::sip::Request) -> Vec<(String, String)> {
    req.headers
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (name, value) = text.split_once(':')?;
            let name = name.trim();
            let keep = ["from", "to", "p-asserted-identity"]
                .iter()
                .any(|k| name.eq_ignore_ascii_case(k))
                || name.len() > 2 && name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-"));
            keep.then(|| (name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// One call's dialog and its bounds, shared by the phases of [`CallTask::drive`].
struct Leg<'a> {
    call_id: &'a str,
    dialog: &'a InviteDialog,
    /// Cancelled when a test tells the sim to hang up.
    hangup: &'a CancellationToken,
    /// The `max_call` bound.
    deadline: tokio::time::Instant,
}

/// What answering leaves for the talking phase.
struct Answered {
    socket: Arc<UdpSocket>,
    remote_rtp: SocketAddr,
    codec: super::g711::Codec,
    /// Our 200's SDP, repeated to re-INVITEs.
    sdp: String,
}

/// Why waiting before the final answer stopped.
enum EarlyEnd {
    /// The delay elapsed: send the final answer.
    Elapsed,
    /// The dialog ended (CANCEL, timeout) or the sim is shutting down.
    Gone,
    /// `hangup` or the `max_call` bound: refuse with 480.
    Told,
}

pub(super) struct CallTask {
    pub(super) shared: Arc<Shared>,
    pub(super) dialogs: Arc<DialogLayer>,
    pub(super) contact: rsipstack::sip::Uri,
}

impl CallTask {
    pub(super) async fn run(self, mut tx: Transaction) {
        let call_id = tx
            .original
            .call_id_header()
            .map(|c| c.value().to_string())
            .unwrap_or_default();
        let offer = String::from_utf8_lossy(&tx.original.body).into_owned();
        self.shared.push(
            &call_id,
            SimEventKind::Invite {
                request_uri: tx.original.uri.to_string(),
                headers: headers_of_interest(&tx.original),
                sdp: offer.clone(),
            },
        );
        let (state_tx, states) = self.dialogs.new_dialog_state_channel();
        let dialog = match self.dialogs.get_or_create_server_invite(
            &tx,
            state_tx,
            None,
            Some(self.contact.clone()),
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "sim cannot create dialog");
                let _ = tx.reply(StatusCode::ServerInternalError).await;
                self.shared.push(&call_id, SimEventKind::Sent { code: 500 });
                return;
            }
        };
        let (hangup, media) = self.register(&call_id);
        // The INVITE server transaction runs in its own task: it sends 100, carries our
        // responses and waits for the ACK or a CANCEL.
        let mut tx_dialog = dialog.clone();
        let cancel = self.shared.cancel.clone();
        let tx_task = tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tx_dialog.handle(&mut tx) => {}
            }
        });
        let media_cancel = self.shared.cancel.child_token();
        self.drive(
            &call_id,
            &dialog,
            states,
            &offer,
            &hangup,
            &media,
            &media_cancel,
        )
        .await;
        media_cancel.cancel();
        // A final error response is still queued in the transaction: let it go out and be ACKed
        // (bounded; shutdown also ends it), but do not hold the call's cleanup for it.
        tokio::spawn(async move {
            let mut tx_task = tx_task;
            let _ = tokio::time::timeout(TX_LINGER, &mut tx_task).await;
            tx_task.abort();
        });
        self.dialogs.remove_dialog(&dialog.id());
        self.record_end(&call_id, &media);
    }

    /// The call's entry in the sim's table: its hang-up token and media counters.
    fn register(&self, call_id: &str) -> (CancellationToken, Arc<MediaState>) {
        let hangup = self.shared.cancel.child_token();
        let media = Arc::new(MediaState::default());
        if let Ok(mut calls) = self.shared.calls.lock() {
            calls.push(CallEntry {
                call_id: call_id.to_owned(),
                media: media.clone(),
                hangup: hangup.clone(),
                codec: None,
                remote_rtp: None,
                local_rtp: None,
                ended: false,
            });
        }
        (hangup, media)
    }

    /// The call is marked ended and its RTP counts reported.
    fn record_end(&self, call_id: &str, media: &MediaState) {
        self.shared.with_call(call_id, |c| c.ended = true);
        self.shared.push(
            call_id,
            SimEventKind::RtpStats {
                sent: media.sent.load(Ordering::Relaxed),
                received: media.received.load(Ordering::Relaxed),
            },
        );
    }

    /// Wait up to `delay` for the final answer; the dialog may end first.
    async fn wait_early(
        &self,
        call_id: &str,
        states: &mut DialogStateReceiver,
        delay: Option<Duration>,
        hangup: &CancellationToken,
        deadline: tokio::time::Instant,
    ) -> EarlyEnd {
        let sleep = async {
            match delay {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return EarlyEnd::Elapsed,
                _ = self.shared.cancel.cancelled() => return EarlyEnd::Gone,
                _ = hangup.cancelled() => return EarlyEnd::Told,
                _ = tokio::time::sleep_until(deadline) => return EarlyEnd::Told,
                st = states.recv() => match st {
                    Some(DialogState::Terminated(_, reason)) => {
                        if matches!(reason, TerminatedReason::UacCancel) {
                            self.shared.push(call_id, SimEventKind::Cancel);
                        }
                        return EarlyEnd::Gone;
                    }
                    Some(_) => {}
                    None => return EarlyEnd::Gone,
                },
            }
        }
    }

    /// One call from its INVITE to its end: [`Self::answer`], [`Self::talk`], then our BYE when
    /// the sim is the one hanging up.
    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &self,
        call_id: &str,
        dialog: &InviteDialog,
        mut states: DialogStateReceiver,
        offer: &str,
        hangup: &CancellationToken,
        media: &Arc<MediaState>,
        media_cancel: &CancellationToken,
    ) {
        let leg = Leg {
            call_id,
            dialog,
            hangup,
            deadline: tokio::time::Instant::now() + self.shared.opts.max_call,
        };
        let Some(answered) = self.answer(&leg, &mut states, offer).await else {
            return;
        };
        if self
            .talk(&leg, &mut states, answered, media, media_cancel)
            .await
        {
            media_cancel.cancel();
            self.bye(&leg).await;
        }
    }

    /// Rings, waits for the moment of the final answer and answers (200 with our SDP) or
    /// refuses as the options say; `None` when the call ended before it was answered.
    async fn answer(
        &self,
        leg: &Leg<'_>,
        states: &mut DialogStateReceiver,
        offer: &str,
    ) -> Option<Answered> {
        let opts = &self.shared.opts;
        let remote = sdp::parse(offer);
        let Some((remote, codec)) = remote.as_ref().and_then(|m| Some((m, m.first_g711()?))) else {
            self.refuse(leg, StatusCode::NotAcceptableHere, 488);
            return None;
        };
        if opts.ring && leg.dialog.ringing(None, None).is_ok() {
            self.shared
                .push(leg.call_id, SimEventKind::Sent { code: 180 });
        }
        let delay = match opts.answer {
            Answer::After(d) | Answer::Reject { after: d, .. } => Some(d),
            Answer::Never => None,
        };
        match self
            .wait_early(leg.call_id, states, delay, leg.hangup, leg.deadline)
            .await
        {
            EarlyEnd::Elapsed => {}
            EarlyEnd::Gone => return None,
            EarlyEnd::Told => {
                self.refuse(leg, StatusCode::TemporarilyUnavailable, 480);
                return None;
            }
        }
        if let Answer::Reject { code, .. } = opts.answer {
            self.refuse(leg, StatusCode::from(code), code);
            return None;
        }
        // Answer: RTP socket first, so the SDP names a real port.
        let bind = SocketAddr::new(self.contact_ip(), 0);
        let socket = match UdpSocket::bind(bind).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(error = %e, "sim cannot bind RTP");
                self.refuse(leg, StatusCode::ServerInternalError, 500);
                return None;
            }
        };
        let local_rtp = socket.local_addr().ok();
        let answer_sdp = sdp::write(
            local_rtp.unwrap_or(bind),
            rand::random::<u32>().into(),
            &[codec],
            remote.telephone_event,
        );
        let headers = vec![Header::ContentType("application/sdp".into())];
        if let Err(e) = leg
            .dialog
            .accept(Some(headers), Some(answer_sdp.clone().into_bytes()))
        {
            tracing::warn!(error = %e, "sim accept failed");
            return None;
        }
        self.shared
            .push(leg.call_id, SimEventKind::Sent { code: 200 });
        let remote_rtp = remote.rtp;
        self.shared.with_call(leg.call_id, |c| {
            c.codec = Some(codec);
            c.remote_rtp = Some(remote_rtp);
            c.local_rtp = local_rtp;
        });
        Some(Answered {
            socket,
            remote_rtp,
            codec,
            sdp: answer_sdp,
        })
    }

    /// A final error response `status` (recorded as `code`).
    fn refuse(&self, leg: &Leg<'_>, status: StatusCode, code: u16) {
        let _ = leg.dialog.reject(Some(status), None);
        self.shared.push(leg.call_id, SimEventKind::Sent { code });
    }

    /// The answered call: media from the 200 on, the ACK and in-dialog requests answered, until
    /// the sim hangs up ([`Hangup`], `hangup`, the `max_call` bound: `true`) or the call ends
    /// without it (the peer's BYE, shutdown: `false`).
    async fn talk(
        &self,
        leg: &Leg<'_>,
        states: &mut DialogStateReceiver,
        answered: Answered,
        media: &Arc<MediaState>,
        media_cancel: &CancellationToken,
    ) -> bool {
        let opts = &self.shared.opts;
        let call_id = leg.call_id;
        // Media starts with the 200 (like most phones), not with the ACK.
        let limit = opts.record_limit.as_millis() as usize * SAMPLE_RATE as usize / 1000;
        let mut audio_done = rtp::start(
            answered.socket,
            answered.remote_rtp,
            answered.codec,
            opts.play.clone(),
            limit,
            media.clone(),
            media_cancel.clone(),
        );
        let mut audio_sent = false;
        let mut bye_at: Option<tokio::time::Instant> = None;
        loop {
            let bye_sleep = async {
                match bye_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.shared.cancel.cancelled() => return false,
                r = &mut audio_done, if !audio_sent => {
                    audio_sent = true;
                    if r.is_ok()
                        && let Hangup::AfterAudio(d) = opts.hangup {
                            bye_at = Some(tokio::time::Instant::now() + d);
                        }
                }
                _ = bye_sleep => return true,
                _ = leg.hangup.cancelled() => return true,
                _ = tokio::time::sleep_until(leg.deadline) => return true,
                st = states.recv() => match st {
                    Some(DialogState::Confirmed(..)) => {
                        self.shared.push(call_id, SimEventKind::Ack);
                    }
                    Some(DialogState::Terminated(_, reason)) => {
                        if matches!(reason, TerminatedReason::UacBye) {
                            self.shared.push(call_id, SimEventKind::Bye { from_remote: true });
                        }
                        return false;
                    }
                    Some(DialogState::Updated(_, _, handle)) => {
                        // re-INVITE: keep the same media, answer with the same SDP.
                        let h = vec![Header::ContentType("application/sdp".into())];
                        let _ = handle.respond(StatusCode::OK, Some(h), Some(answered.sdp.clone().into_bytes())).await;
                    }
                    Some(DialogState::Info(_, _, handle))
                    | Some(DialogState::Options(_, _, handle))
                    | Some(DialogState::Message(_, _, handle))
                    | Some(DialogState::Notify(_, _, handle)) => {
                        let _ = handle.reply(StatusCode::OK).await;
                    }
                    Some(_) => {}
                    None => return false,
                },
            }
        }
    }

    /// Our BYE, its answer awaited at most [`BYE_TIMEOUT`].
    async fn bye(&self, leg: &Leg<'_>) {
        match tokio::time::timeout(BYE_TIMEOUT, leg.dialog.bye()).await {
            Ok(Ok(())) => self
                .shared
                .push(leg.call_id, SimEventKind::Bye { from_remote: false }),
            Ok(Err(e)) => tracing::debug!(error = %e, "sim BYE failed"),
            Err(_) => tracing::debug!("sim BYE timed out"),
        }
    }

    fn contact_ip(&self) -> std::net::IpAddr {
        self.shared.opts.bind.ip()
    }
}
