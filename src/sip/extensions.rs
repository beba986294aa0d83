//! Carrier interop extensions of an outbound INVITE: session timers (RFC 4028) and reliable
//! provisional responses (RFC 3262). This file holds the wire facts only — which headers an
//! INVITE carries, what a response says about them, and how to retry after a 422 or a 420.
//! When to refresh and when to give up on a session is the call machine's business.

use std::time::Duration;

use rsipstack::sip::{Header, Request, Response};

/// RFC 4028 §4: the smallest session interval anybody may ask for.
pub const MIN_SE_FLOOR: u32 = 90;

/// Methods dialgate accepts inside a dialog; sent as `Allow` so that a peer knows it may refresh
/// the session with UPDATE (RFC 4028 §9) and that PRACK is understood.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, NOTIFY";

/// Session timer settings of one trunk (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// `Session-Expires` asked for, seconds.
    pub expires: u32,
    /// `Min-SE` we accept, seconds.
    pub min_se: u32,
}

/// How an INVITE treats reliable provisional responses (RFC 3262).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prack {
    /// Nothing advertised (reliable provisionals are still PRACKed: rsipstack does it).
    Off,
    /// `Supported: 100rel`.
    #[default]
    Supported,
    /// `Require: 100rel` (the trunk demands it), listed in `Supported` too; a 420 retries with
    /// `Supported` only.
    Required,
}

/// The extensions of one outbound INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions {
    /// Session timers, when the trunk uses them.
    pub session_timer: Option<SessionTimer>,
    /// Reliable provisionals.
    pub prack: Prack,
}

/// Who refreshes an established session (RFC 4028 `refresher`), seen from dialgate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The session interval.
    pub interval: Duration,
    /// dialgate sends the refreshes (else the peer does and dialgate only watches).
    pub we_refresh: bool,
}

impl Extensions {
    /// Nothing advertised: what the bot leg and old configurations get.
    pub const NONE: Extensions = Extensions {
        session_timer: None,
        prack: Prack::Off,
    };

    /// The headers these extensions add to an INVITE.
    pub fn invite_headers(&self) -> Vec<Header> {
        let mut supported = Vec::new();
        let mut out = Vec::new();
        match self.prack {
            Prack::Off => {}
            Prack::Supported => supported.push("100rel"),
            Prack::Required => {
                // RFC 3261 §20.37: Supported lists every extension we understand, the required
                // ones too. PJSIP with 100rel mandatory reads only Supported and answered an
                // INVITE with `Require: 100rel` alone 421 Extension Required.
                supported.push("100rel");
                out.push(Header::Require("100rel".into()));
            }
        }
        if let Some(st) = self.session_timer {
            supported.push("timer");
            out.push(Header::Other(
                "Session-Expires".into(),
                st.expires.to_string(),
            ));
            out.push(Header::Other("Min-SE".into(), st.min_se.to_string()));
        }
        if !supported.is_empty() {
            out.insert(0, Header::Supported(supported.join(", ").into()));
        }
        if self.session_timer.is_some() || self.prack != Prack::Off {
            out.push(Header::Allow(ALLOW.into()));
        }
        out
    }

    /// After a 422 (interval too small) or a 420 (extension not supported): the extensions to
    /// retry with, or `None` when a retry would not change anything (the failure stands).
    pub fn retry_after(&self, resp: &Response) -> Option<Extensions> {
        let code = u16::from(resp.status_code.clone());
        match code {
            422 => {
                let st = self.session_timer?;
                let min_se = min_se(resp)?;
                // RFC 4028 §7.4: retry with Session-Expires ≥ the peer's Min-SE; a peer that asks
                // for less than what we sent is confused, and retrying would loop.
                (min_se > st.expires || min_se > st.min_se).then(|| Extensions {
                    session_timer: Some(SessionTimer {
                        expires: st.expires.max(min_se),
                        min_se: st.min_se.max(min_se),
                    }),
                    ..*self
                })
            }
            420 => {
                let unsupported = tokens(resp, "Unsupported");
                let mut next = *self;
                if unsupported.iter().any(|t| t == "100rel") {
                    next.prack = Prack::Off;
                }
                if unsupported.iter().any(|t| t == "timer") {
                    next.session_timer = None;
                }
                // A 420 naming nothing we sent: drop what we require, once.
                if next == *self && self.prack == Prack::Required {
                    next.prack = Prack::Supported;
                }
                (next != *self).then_some(next)
            }
            _ => None,
        }
    }

    /// What a 2xx (to the INVITE or to a refresh) says about the session: `None` when it
    /// carries no `Session-Expires` (RFC 4028 §7.2: the session then does not expire).
    pub fn negotiated(&self, resp: &Response) -> Option<Negotiated> {
        self.session_timer?;
        let (secs, refresher) = session_expires(resp)?;
        Some(Negotiated {
            interval: Duration::from_secs(u64::from(secs.max(1))),
            // We are the UAC of every dialog we make; without a refresher the UAC refreshes.
            we_refresh: refresher.as_deref() != Some("uas"),
        })
    }
}

/// Whether a provisional response is reliable (RFC 3262 §7.1: it carries an `RSeq`).
pub fn is_reliable(resp: &Response) -> bool {
    !values(resp, "RSeq").is_empty()
}

/// Whether a response's `Allow` lists UPDATE (then refreshes use UPDATE, else re-INVITE).
pub fn allows_update(resp: &Response) -> bool {
    tokens(resp, "Allow").iter().any(|t| t == "update")
}

/// A peer's refresh request (UPDATE or re-INVITE inside the dialog, dialgate as UAS): the
/// headers of dialgate's 2xx and the session as it then stands. `None` when the request has no
/// `Session-Expires` (the session no longer expires).
pub fn answer_refresh(req: &Request) -> Option<(Vec<Header>, Negotiated)> {
    let (secs, refresher) = session_expires(req)?;
    // RFC 4028 §9: the UAS fills in a missing refresher; the requester refreshes (it just did).
    let refresher = refresher.unwrap_or_else(|| "uac".to_owned());
    let headers = vec![
        Header::Other(
            "Session-Expires".into(),
            format!("{secs};refresher={refresher}"),
        ),
        Header::Require("timer".into()),
    ];
    Some((
        headers,
        Negotiated {
            interval: Duration::from_secs(u64::from(secs.max(1))),
            // In the peer's request we are the UAS.
            we_refresh: refresher == "uas",
        },
    ))
}

/// The headers of dialgate's own refresh request (dialgate stays the refresher).
pub fn refresh_headers(n: &Negotiated, st: SessionTimer) -> Vec<Header> {
    vec![
        Header::Supported("timer".into()),
        Header::Other(
            "Session-Expires".into(),
            format!("{};refresher=uac", n.interval.as_secs()),
        ),
        Header::Other("Min-SE".into(), st.min_se.to_string()),
    ]
}

/// Values of every header called `name` (or its compact form), split at commas, lower-case.
fn tokens<M: rsipstack::sip::prelude::HeadersExt>(msg: &M, name: &str) -> Vec<String> {
    values(msg, name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn values<M: rsipstack::sip::prelude::HeadersExt>(msg: &M, name: &str) -> Vec<String> {
    let compact = match name {
        "Session-Expires" => Some("x"),
        "Supported" => Some("k"),
        _ => None,
    };
    msg.headers()
        .iter()
        .filter(|h| {
            let n = h.name();
            n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
        })
        .map(|h| h.value().trim().to_owned())
        .collect()
}

/// `Session-Expires: 1800;refresher=uas` → `(1800, Some("uas"))`.
fn session_expires<M: rsipstack::sip::prelude::HeadersExt>(
    msg: &M,
) -> Option<(u32, Option<String>)> {
    let v = values(msg, "Session-Expires").into_iter().next()?;
    let mut parts = v.split(';');
    let secs = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    Some((secs, refresher))
}

fn min_se<M: rsipstack::sip::prelude::HeadersExt>(msg: &M) -> Option<u32> {
    let v = values(msg, "Min-SE").into_iter().next()?;
    v.split(';').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(text: &str) -> Response {
        let raw = format!(
            "SIP/2.0 {text}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: c1\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        Response::try_from(raw.as_str()).expect("a valid response")
    }

    fn with(status: &str, extra: &str) -> Response {
        resp(&format!("{status}\r\n{extra}").replace("\r\n\r\n", "\r\n"))
    }

    const ST: Extensions = Extensions {
        session_timer: Some(SessionTimer {
            expires: 1800,
            min_se: 90,
        }),
        prack: Prack::Supported,
    };

    #[test]
    fn invite_headers_name_every_extension() {
        let h: Vec<String> = ST.invite_headers().iter().map(|h| h.to_string()).collect();
        assert_eq!(
            h[..3],
            [
                "Supported: 100rel, timer",
                "Session-Expires: 1800",
                "Min-SE: 90"
            ]
        );
        assert!(h[3].starts_with("Allow: ") && h[3].contains("UPDATE"));
        assert!(Extensions::NONE.invite_headers().is_empty());
        let req = Extensions {
            prack: Prack::Required,
            session_timer: None,
        };
        let h: Vec<String> = req.invite_headers().iter().map(|h| h.to_string()).collect();
        assert_eq!(h[..2], ["Supported: 100rel", "Require: 100rel"]);
    }

    #[test]
    fn a_422_raises_the_interval_to_the_peers_min_se() {
        let r = with("422 Session Interval Too Small", "Min-SE: 3600");
        let next = ST.retry_after(&r).expect("retry");
        assert_eq!(
            next.session_timer,
            Some(SessionTimer {
                expires: 3600,
                min_se: 3600
            })
        );
        // Asked again for what we already send: no loop.
        assert_eq!(next.retry_after(&r), None);
        // Without Min-SE a 422 cannot be answered.
        assert_eq!(ST.retry_after(&resp("422 Too Small")), None);
    }

    #[test]
    fn a_420_drops_the_unsupported_extension() {
        let req = Extensions {
            prack: Prack::Required,
            ..ST
        };
        let r = with("420 Bad Extension", "Unsupported: 100rel");
        assert_eq!(req.retry_after(&r).map(|e| e.prack), Some(Prack::Off));
        let r = with("420 Bad Extension", "Unsupported: timer");
        assert_eq!(req.retry_after(&r).map(|e| e.session_timer), Some(None));
        // Nothing named: Require becomes Supported once, then the 420 stands.
        let bare = resp("420 Bad Extension");
        let once = req.retry_after(&bare).expect("retry");
        assert_eq!(once.prack, Prack::Supported);
        assert_eq!(once.retry_after(&bare), None);
    }

    #[test]
    fn a_provisional_with_rseq_is_reliable() {
        assert!(is_reliable(&with(
            "183 Session Progress",
            "Require: 100rel\r\nRSeq: 7"
        )));
        assert!(!is_reliable(&resp("183 Session Progress")));
    }

    #[test]
    fn the_2xx_says_who_refreshes() {
        let uac = with(
            "200 OK",
            "Session-Expires: 90;refresher=uac\r\nRequire: timer",
        );
        assert_eq!(
            ST.negotiated(&uac),
            Some(Negotiated {
                interval: Duration::from_secs(90),
                we_refresh: true
            })
        );
        let uas = with("200 OK", "x: 120 ; refresher=UAS");
        assert_eq!(ST.negotiated(&uas).map(|n| n.we_refresh), Some(false));
        assert_eq!(ST.negotiated(&resp("200 OK")), None);
        // A trunk without session timers ignores them.
        assert_eq!(Extensions::NONE.negotiated(&uac), None);
        assert!(allows_update(&with(
            "200 OK",
            "Allow: INVITE, ACK, BYE\r\nAllow: update"
        )));
        assert!(!allows_update(&with("200 OK", "Allow: INVITE, ACK, BYE")));
    }
}
