//! The one place where SDP is parsed and generated (RFC 4566 / RFC 3264 offer-answer).
//!
//! Parsing goes through `sdp-rs`, with two local fixes:
//! - `sdp-rs` 0.2.1 misspells `inactive` ("inacive"), so `a=inactive` would come back as an unknown
//!   attribute; media direction is therefore pre-scanned from the raw text here.
//! - `sdp-rs` only accepts CRLF-or-LF lines it tokenizes itself; input is normalised to CRLF first.
//!
//! Generated SDP only ever carries the *local* address handed in by the caller, so one leg's
//! addresses never leak into the other leg.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Why an SDP could not be used. [`SdpError::is_not_acceptable`] tells the caller to answer 488.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SdpError {
    /// The text is not valid SDP.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No `m=audio` line with a usable port.
    #[error("no audio stream in SDP")]
    NoAudio,
    /// No `c=` line at session or audio media level.
    #[error("no connection address in SDP")]
    NoConnection,
    /// The offer has no codec we support (PCMU/PCMA): answer 488 Not Acceptable Here.
    #[error("no common codec (offered: {0})")]
    NoCommonCodec(String),
}

impl SdpError {
    /// SIP status to answer a request whose SDP failed this way: 488 Not Acceptable Here when
    /// the media cannot be used, 400 when the body is not SDP at all.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Malformed(_) => 400,
            SdpError::NoAudio | SdpError::NoConnection | SdpError::NoCommonCodec(_) => 488,
        }
    }
}

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default when absent).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction an answerer puts in its answer to an offer with this direction.
    pub fn mirror(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One payload type of the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// RTP payload type.
    pub pt: u8,
    /// Encoding name as written (`PCMU`, `PCMA`, `telephone-event`, ...).
    pub name: String,
    /// Clock rate in Hz.
    pub rate: u32,
}

/// What the peer's SDP says about its audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSdp {
    /// Where to send RTP (media-level `c=` wins over session-level).
    pub address: IpAddr,
    /// Audio RTP port (0 = stream rejected/disabled).
    pub port: u16,
    /// RTCP port: `a=rtcp` when present, else `port + 1`.
    pub rtcp_port: u16,
    /// Codecs in the peer's order of preference (telephone-event included).
    pub codecs: Vec<Codec>,
    /// Payload type of `telephone-event/8000`, if offered.
    pub telephone_event: Option<u8>,
    /// Media direction.
    pub direction: Direction,
    /// `a=ptime` if given.
    pub ptime: Option<u32>,
}

/// Our side of the media: the relay's local address and port for this leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSdp {
    /// Address advertised in `o=` and `c=` (the public address of dialgate).
    pub address: IpAddr,
    /// Local RTP port (RTCP is `port + 1`).
    pub port: u16,
    /// `o=` session id; keep it stable for a leg and bump `version` on changes.
    pub session_id: u64,
    /// `o=` session version.
    pub version: u64,
}

/// The outcome of an offer/answer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The chosen audio codec (PCMU or PCMA).
    pub codec: Codec,
    /// telephone-event payload type both sides use, if any.
    pub telephone_event: Option<u8>,
    /// Our direction in the answer.
    pub direction: Direction,
    /// The remote media description.
    pub remote: RemoteSdp,
}

/// Payload type of telephone-event that dialgate offers.
pub const TELEPHONE_EVENT_PT: u8 = 101;

fn is_g711(c: &Codec) -> bool {
    c.rate == 8000 && (c.name.eq_ignore_ascii_case("PCMU") || c.name.eq_ignore_ascii_case("PCMA"))
}

/// Parse an SDP body and extract the first audio stream.
pub fn parse(text: &str) -> Result<RemoteSdp, SdpError> {
    let norm = normalise(text);
    let sd = sdp_rs::SessionDescription::try_from(norm.as_str())
        .map_err(|e| SdpError::Malformed(e.to_string()))?;

    let (audio_idx, media) = sd
        .media_descriptions
        .iter()
        .enumerate()
        .find(|(_, m)| m.media.media == sdp_rs::lines::media::MediaType::Audio)
        .ok_or(SdpError::NoAudio)?;

    let address = media
        .connections
        .first()
        .or(sd.connection.as_ref())
        .map(|c| c.connection_address.base)
        .ok_or(SdpError::NoConnection)?;
    let port = media.media.port;

    let codecs = codecs_of(media);
    let telephone_event = codecs
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("telephone-event") && c.rate == 8000)
        .map(|c| c.pt);

    let ptime = media.attributes.iter().find_map(|a| match a {
        sdp_rs::lines::Attribute::Ptime(p) if p.is_finite() && *p > 0.0 && *p < 1000.0 => {
            Some(*p as u32)
        }
        _ => None,
    });

    let (direction, rtcp) = scan_media_section(&norm, audio_idx);
    let rtcp_port = rtcp.unwrap_or_else(|| port.saturating_add(1));

    Ok(RemoteSdp {
        address,
        port,
        rtcp_port,
        codecs,
        telephone_event,
        direction,
        ptime,
    })
}

/// One line ending style (sdp-rs wants CRLF), no blank lines, IPv6 addresses unbracketed.
fn normalise(text: &str) -> String {
    let mut norm = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        norm.push_str(&unbracket_ip6(line));
        norm.push_str("\r\n");
    }
    norm
}

/// The media section's codecs in its `m=` order: each payload type's `a=rtpmap`, or the
/// static assignment of RFC 3551 for the ones dialgate knows without it; others are skipped.
fn codecs_of(media: &sdp_rs::MediaDescription) -> Vec<Codec> {
    let mut codecs = Vec::new();
    for fmt in media.media.fmt.split_whitespace() {
        let Ok(pt) = fmt.parse::<u8>() else { continue };
        if pt > 127 {
            continue;
        }
        let rtpmap = media.attributes.iter().find_map(|a| match a {
            sdp_rs::lines::Attribute::Rtpmap(r) if r.payload_type == u32::from(pt) => Some(r),
            _ => None,
        });
        let codec = match rtpmap {
            Some(r) => Codec {
                pt,
                name: r.encoding_name.clone(),
                rate: u32::try_from(r.clock_rate).unwrap_or(0),
            },
            None => match static_codec(pt) {
                Some(name) => Codec {
                    pt,
                    name: name.into(),
                    rate: 8000,
                },
                None => continue,
            },
        };
        codecs.push(codec);
    }
    codecs
}

/// The name of a static payload type (RFC 3551) dialgate reads without an `a=rtpmap`.
fn static_codec(pt: u8) -> Option<&'static str> {
    match pt {
        0 => Some("PCMU"),
        8 => Some("PCMA"),
        18 => Some("G729"),
        9 => Some("G722"),
        _ => None,
    }
}

/// `o=`/`c=` lines written `IN IP6 [::1]` (SIPp does; RFC 4566 has no brackets) are read as
/// `IN IP6 ::1`: the address is plain enough to be liberal about.
fn unbracket_ip6(line: &str) -> std::borrow::Cow<'_, str> {
    if !(line.starts_with("o=") || line.starts_with("c=")) {
        return line.into();
    }
    match line.split_once("IN IP6 [") {
        Some((head, rest)) => match rest.split_once(']') {
            Some((addr, tail)) => format!("{head}IN IP6 {addr}{tail}").into(),
            None => line.into(),
        },
        None => line.into(),
    }
}

/// Read `a=` direction and `a=rtcp` ourselves (sdp-rs loses `a=inactive`). Media level wins
/// over session level for the direction.
fn scan_media_section(norm: &str, audio_idx: usize) -> (Direction, Option<u16>) {
    let mut session_dir = None;
    let mut media_dir = None;
    let mut rtcp = None;
    let mut media_no: Option<usize> = None;
    for line in norm.lines() {
        if line.starts_with("m=") {
            media_no = Some(media_no.map_or(0, |n| n + 1));
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let dir = match attr.trim() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        };
        match media_no {
            None => {
                if dir.is_some() {
                    session_dir = dir;
                }
            }
            Some(n) if n == audio_idx => {
                if dir.is_some() {
                    media_dir = dir;
                }
                if let Some(v) = attr.strip_prefix("rtcp:") {
                    rtcp = v
                        .split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<u16>().ok());
                }
            }
            Some(_) => {}
        }
    }
    (media_dir.or(session_dir).unwrap_or_default(), rtcp)
}

fn addr_line(ip: IpAddr) -> (&'static str, String) {
    match ip {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    }
}

fn render(local: &LocalSdp, codecs: &[Codec], dir: Direction) -> String {
    let (at, addr) = addr_line(local.address);
    let mut s = String::with_capacity(320);
    // write! on a String cannot fail; ignore the Ok.
    let _ = write!(
        s,
        "v=0\r\no=dialgate {} {} IN {at} {addr}\r\ns=dialgate\r\nc=IN {at} {addr}\r\nt=0 0\r\n",
        local.session_id, local.version
    );
    let fmts: Vec<String> = codecs.iter().map(|c| c.pt.to_string()).collect();
    let _ = write!(s, "m=audio {} RTP/AVP {}\r\n", local.port, fmts.join(" "));
    for c in codecs {
        let _ = write!(s, "a=rtpmap:{} {}/{}\r\n", c.pt, c.name, c.rate);
        if c.name.eq_ignore_ascii_case("telephone-event") {
            let _ = write!(s, "a=fmtp:{} 0-16\r\n", c.pt);
        }
    }
    let _ = write!(
        s,
        "a=rtcp:{}\r\na=ptime:20\r\na={}\r\n",
        local.port.saturating_add(1),
        dir.attr()
    );
    s
}

/// Our offer: PCMU, PCMA, telephone-event 0-16, sendrecv, ptime 20.
pub fn offer(local: &LocalSdp) -> String {
    let codecs = [
        Codec {
            pt: 0,
            name: "PCMU".into(),
            rate: 8000,
        },
        Codec {
            pt: 8,
            name: "PCMA".into(),
            rate: 8000,
        },
        Codec {
            pt: TELEPHONE_EVENT_PT,
            name: "telephone-event".into(),
            rate: 8000,
        },
    ];
    render(local, &codecs, Direction::SendRecv)
}

/// Answer a remote offer: first G.711 codec in the offerer's order, telephone-event with the
/// offered payload type, direction mirrored. `Err(NoCommonCodec)` → reply 488.
pub fn answer(remote_offer: &str, local: &LocalSdp) -> Result<(String, Negotiated), SdpError> {
    let remote = parse(remote_offer)?;
    let negotiated = negotiate(remote)?;
    let mut codecs = vec![negotiated.codec.clone()];
    if let Some(pt) = negotiated.telephone_event {
        codecs.push(Codec {
            pt,
            name: "telephone-event".into(),
            rate: 8000,
        });
    }
    let sdp = render(local, &codecs, negotiated.direction);
    Ok((sdp, negotiated))
}

/// Read the answer to our own offer (from a 200 OK): which codec the peer picked.
pub fn read_answer(remote_answer: &str) -> Result<Negotiated, SdpError> {
    negotiate(parse(remote_answer)?)
}

fn negotiate(remote: RemoteSdp) -> Result<Negotiated, SdpError> {
    let codec = remote
        .codecs
        .iter()
        .find(|c| is_g711(c))
        .cloned()
        .ok_or_else(|| {
            let names: Vec<String> = remote.codecs.iter().map(|c| c.name.clone()).collect();
            SdpError::NoCommonCodec(names.join(","))
        })?;
    Ok(Negotiated {
        codec,
        telephone_event: remote.telephone_event,
        direction: remote.direction.mirror(),
        remote,
    })
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;
