//! A deliberately tiny SDP reader/writer for the simulated peers: one audio stream, `c=`,
//! `m=audio`, static G.711 payload types and telephone-event. dialgate's real SDP handling lives
//! in its `sip` module; the sim only needs to answer like a simple phone would.

use std::net::{IpAddr, SocketAddr};

use super::g711::Codec;

/// What the sim needs from a remote SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMedia {
    /// Where the peer wants RTP.
    pub rtp: SocketAddr,
    /// Payload types on the `m=audio` line, in order of preference.
    pub payload_types: Vec<u8>,
    /// telephone-event payload type, if offered.
    pub telephone_event: Option<u8>,
}

impl AudioMedia {
    /// The first offered G.711 codec (what a simple phone answers with).
    pub fn first_g711(&self) -> Option<Codec> {
        self.payload_types
            .iter()
            .find_map(|&pt| Codec::from_payload_type(pt))
    }
}

/// Read the first audio stream. `None` when there is no usable `c=` or `m=audio`.
pub fn parse(sdp: &str) -> Option<AudioMedia> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut pts = Vec::new();
    let mut te = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            if seen_audio {
                break; // only the first audio stream matters
            }
            let mut f = rest.split_whitespace();
            in_audio = f.next() == Some("audio");
            if in_audio {
                seen_audio = true;
                port = f.next().and_then(|p| p.parse().ok());
                let _proto = f.next();
                pts = f.filter_map(|p| p.parse().ok()).collect();
            }
        } else if let Some(rest) = line.strip_prefix("c=") {
            // c=IN IP4 127.0.0.1
            let ip = rest.split_whitespace().nth(2).and_then(|a| a.parse().ok());
            if in_audio {
                media_ip = ip;
            } else if !seen_audio {
                session_ip = ip;
            }
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:")
            && in_audio
        {
            let mut f = rest.split_whitespace();
            let pt = f.next().and_then(|p| p.parse::<u8>().ok());
            let enc = f.next().unwrap_or("");
            if enc.to_ascii_lowercase().starts_with("telephone-event/") {
                te = pt;
            }
        }
    }
    let ip = media_ip.or(session_ip)?;
    Some(AudioMedia {
        rtp: SocketAddr::new(ip, port?),
        payload_types: pts,
        telephone_event: te,
    })
}

/// Write an SDP for one audio stream at `local` with `codecs` (and telephone-event if given).
/// Used for the answer (one codec) and by tests acting as the offerer.
pub fn write(
    local: SocketAddr,
    session_id: u64,
    codecs: &[Codec],
    telephone_event: Option<u8>,
) -> String {
    let ipv = if local.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.ip();
    let mut pts: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    if let Some(te) = telephone_event {
        pts.push(te.to_string());
    }
    let mut s = format!(
        "v=0\r\no=- {session_id} {session_id} IN {ipv} {ip}\r\ns=dialgate-sim\r\nc=IN {ipv} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
        local.port(),
        pts.join(" ")
    );
    for c in codecs {
        s.push_str(&format!(
            "a=rtpmap:{} {}/8000\r\n",
            c.payload_type(),
            c.name()
        ));
    }
    if let Some(te) = telephone_event {
        s.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        ));
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offer_and_picks_first_g711() {
        // 1. An offer listing PCMA before PCMU, with a media-level c= overriding the session one.
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
                     m=audio 40000 RTP/AVP 18 8 0 101\r\nc=IN IP4 127.0.0.1\r\n\
                     a=rtpmap:101 telephone-event/8000\r\n";
        let m = parse(offer).unwrap();
        // 2. The media-level address wins, the order is kept, and PCMA is chosen.
        assert_eq!(m.rtp, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(m.payload_types, vec![18, 8, 0, 101]);
        assert_eq!(m.telephone_event, Some(101));
        assert_eq!(m.first_g711(), Some(Codec::Pcma));
    }

    #[test]
    fn written_sdp_parses_back() {
        // 1. Write an answer, 2. read it back unchanged.
        let local: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        let s = write(local, 7, &[Codec::Pcmu], Some(101));
        let m = parse(&s).unwrap();
        assert_eq!(m.rtp, local);
        assert_eq!(m.payload_types, vec![0, 101]);
        assert_eq!(m.first_g711(), Some(Codec::Pcmu));
    }

    #[test]
    fn no_audio_means_none() {
        // 1. A video-only or empty body gives no media.
        assert_eq!(parse(""), None);
        assert_eq!(
            parse("v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n"),
            None
        );
    }
}
