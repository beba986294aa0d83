//! Building the two SIP legs of a call from the configuration and the
//! dialout request, and turning negotiated SDP into relay parameters.

use super::routing::ResolvedRoute;
use crate::config::{Bot, CallerIdFormat};
use crate::core::{DialoutRequest, Target};
use crate::media::{AudioCodec, Direction as MediaDirection, G711Law, RemoteMedia};
use crate::sip::OutboundCall;
use crate::sip::extensions::{Extensions, Prack, SessionTimer};
use crate::sip::sdp::{Direction, Negotiated};
use std::net::{IpAddr, SocketAddr};

/// Which leg an event belongs to (the machine's type).
pub use super::machine::LegSide;

/// `host[:port]` of a connection address written as `host:port` or `sip:host:port`.
pub fn host_port(address: &str) -> &str {
    let a = address.trim();
    let a = a
        .strip_prefix("sips:")
        .or_else(|| a.strip_prefix("sip:"))
        .unwrap_or(a);
    a.split(';').next().unwrap_or(a)
}

/// Applies the connection's caller-ID format to a number.
pub fn format_caller(number: &str, fmt: CallerIdFormat) -> String {
    match fmt {
        CallerIdFormat::E164 => {
            if number.starts_with('+') || !number.bytes().all(|b| b.is_ascii_digit()) {
                number.to_owned()
            } else {
                format!("+{number}")
            }
        }
        CallerIdFormat::National => number.trim_start_matches('+').to_owned(),
        CallerIdFormat::AsIs => number.to_owned(),
    }
}

/// The calling number (From user part) towards the trunk: the request's caller, else the
/// route's number, else the bot's first number, else the bot's ID — in the trunk's format.
pub fn caller_user(
    req: &DialoutRequest,
    route: &ResolvedRoute<'_>,
    bot: &Bot,
    default_caller: Option<&str>,
) -> String {
    let raw = req
        .caller
        .clone()
        .or_else(|| route.calling_number.map(str::to_owned))
        .or_else(|| default_caller.map(str::to_owned))
        .unwrap_or_else(|| bot.id.clone());
    format_caller(&raw, route.connection.caller_id_format)
}

/// The carrier INVITE for this call.
pub fn carrier_call(
    conversation_id: &str,
    req: &DialoutRequest,
    route: &ResolvedRoute<'_>,
    from_user: &str,
    public: IpAddr,
    sdp_offer: String,
) -> OutboundCall {
    let conn = route.connection;
    let trunk = conn.address.to_string();
    let request_uri = match &req.target {
        Target::Tel(n) => format!("sip:{n}@{trunk};user=phone"),
        Target::Sip(u) => u.clone(),
    };
    let from_user = from_user.to_owned();
    let from_host = req
        .caller_host
        .clone()
        .unwrap_or_else(|| crate::sip::family::uri_host(public));
    let mut headers: Vec<(String, String)> = conn
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &req.headers {
        headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    if conn.p_asserted_identity {
        let pai = match &req.caller_display_name {
            Some(d) => format!("\"{}\" <sip:{from_user}@{from_host}>", d.replace('"', "")),
            None => format!("<sip:{from_user}@{from_host}>"),
        };
        headers.push(("P-Asserted-Identity".into(), pai));
    }
    let credentials = conn
        .username
        .as_ref()
        .map(|u| (u.clone(), conn.password.clone().unwrap_or_default()));
    OutboundCall {
        to_uri: request_uri.clone(),
        request_uri,
        from_user,
        from_host,
        from_display: req.caller_display_name.clone(),
        proxy: Some((trunk, conn.transport)),
        backup_proxy: conn
            .backup_address
            .as_ref()
            .map(|b| (b.to_string(), conn.transport)),
        naptr: !conn.transport_explicit,
        headers,
        credentials,
        sdp_offer,
        call_id: None,
        conversation_id: conversation_id.to_owned(),
        extensions: carrier_extensions(conn),
        tls: (conn.transport == crate::core::Transport::Tls).then(|| trunk_tls(&conn.tls)),
    }
}

/// The trunk's session timer and 100rel settings as INVITE extensions.
pub fn carrier_extensions(conn: &crate::config::SipConnection) -> Extensions {
    Extensions {
        session_timer: (conn.session_expires_sec > 0).then_some(SessionTimer {
            expires: conn.session_expires_sec,
            min_se: conn.min_se,
        }),
        prack: if conn.require_100rel {
            Prack::Required
        } else {
            Prack::Supported
        },
    }
}

/// A SIP bot's session timer (`bots[].session_expires_sec`, `min_se`) as INVITE extensions.
/// The bot leg advertises no 100rel: bots answer at once and need no reliable provisionals.
pub fn bot_extensions(bot: &Bot) -> Extensions {
    Extensions {
        session_timer: (bot.session_expires_sec > 0).then_some(SessionTimer {
            expires: bot.session_expires_sec,
            min_se: bot.min_se,
        }),
        prack: Prack::Off,
    }
}

/// The trunk's TLS settings in the SIP layer's terms.
pub fn trunk_tls(t: &crate::config::TrunkTls) -> crate::sip::tls_client::TrunkTlsSettings {
    crate::sip::tls_client::TrunkTlsSettings {
        verify: t.verify,
        ca_file: t.ca_file.clone(),
        client_cert: t.client_cert.clone(),
    }
}

/// The bot INVITE for this call.
pub fn bot_call(
    conversation_id: &str,
    req: &DialoutRequest,
    sip_uri: &str,
    caller: &str,
    public: IpAddr,
    sdp_offer: String,
) -> OutboundCall {
    let target = req.target.display();
    let callee_user = req.target.routing_key().to_owned();
    OutboundCall {
        request_uri: sip_uri.to_owned(),
        to_uri: sip_uri.to_owned(),
        from_user: callee_user,
        from_host: crate::sip::family::uri_host(public),
        from_display: None,
        proxy: None,
        backup_proxy: None,
        naptr: false,
        headers: vec![
            (
                "X-Dialgate-Conversation-Id".into(),
                conversation_id.to_owned(),
            ),
            ("X-Dialgate-Target".into(), target),
            ("X-Dialgate-Caller".into(), caller.to_owned()),
        ],
        credentials: None,
        sdp_offer,
        call_id: None,
        conversation_id: conversation_id.to_owned(),
        extensions: Extensions::NONE,
        tls: None,
    }
}

/// Relay parameters from a negotiated SDP exchange; `None` when the codec is
/// not G.711 or the stream is disabled.
pub fn remote_media(n: &Negotiated) -> Option<RemoteMedia> {
    if n.remote.port == 0 {
        return None;
    }
    let law = if n.codec.name.eq_ignore_ascii_case("PCMU") {
        G711Law::Pcmu
    } else if n.codec.name.eq_ignore_ascii_case("PCMA") {
        G711Law::Pcma
    } else {
        return None;
    };
    Some(RemoteMedia {
        rtp: SocketAddr::new(n.remote.address, n.remote.port),
        rtcp: Some(SocketAddr::new(n.remote.address, n.remote.rtcp_port)),
        codec: AudioCodec {
            law,
            pt: n.codec.pt,
        },
        dtmf_pt: n.telephone_event,
        direction: match n.remote.direction {
            Direction::SendRecv => MediaDirection::SendRecv,
            Direction::SendOnly => MediaDirection::SendOnly,
            Direction::RecvOnly => MediaDirection::RecvOnly,
            Direction::Inactive => MediaDirection::Inactive,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_addresses_and_caller_formats() {
        assert_eq!(
            host_port("sip:10.0.0.1:5070;transport=tcp"),
            "10.0.0.1:5070"
        );
        assert_eq!(host_port("carrier.example"), "carrier.example");
        assert_eq!(
            format_caller("15551234567", CallerIdFormat::E164),
            "+15551234567"
        );
        assert_eq!(
            format_caller("+15551234567", CallerIdFormat::National),
            "15551234567"
        );
        assert_eq!(
            format_caller("+15551234567", CallerIdFormat::AsIs),
            "+15551234567"
        );
    }
}
