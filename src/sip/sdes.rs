//! SDES (RFC 4568): the `a=crypto` lines of the carrier offer and the answer's choice.
//!
//! Our offer carries one line per suite (tag 1: AES_CM_128_HMAC_SHA1_80, tag 2: _32), each
//! with its own random master key and salt. The answer names one tag and gives the peer's
//! key: what we send is protected with our key of that tag, what we receive is checked with
//! the peer's. Keys are made per call and only ever written into an SDP sent over TLS
//! (configuration refuses `srtp` on other trunks).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::core::srtp::{MASTER_LEN, SrtpKeys, SrtpSuite};

/// Whether SRTP must, may or must not be used (the trunk's `srtp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdesPolicy {
    /// `RTP/AVP` with `a=crypto`: SRTP if the answer takes it, else plain RTP.
    Optional,
    /// `RTP/SAVP` with `a=crypto`: an answer without a usable crypto line fails the call.
    Required,
}

/// What the answer said about SRTP.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SdesError {
    /// No `a=crypto` line in an answer to a `required` offer.
    #[error("the carrier answered without SRTP (no a=crypto), but the trunk requires it")]
    NotAccepted,
    /// A crypto line that names no offered tag/suite, or a key that is not 30 bytes.
    #[error("the carrier's a=crypto line is not usable: {0}")]
    Unusable(String),
    /// A re-INVITE offer without `a=crypto` on a trunk that requires SRTP.
    #[error("the carrier's re-INVITE offer has no a=crypto, but the trunk requires SRTP")]
    OfferWithoutCrypto,
}

/// Our SDES offer on the carrier leg: its keys, kept to read the answer.
#[derive(Clone)]
pub struct SdesOffer {
    /// Must or may.
    pub policy: SdesPolicy,
    keys: [(u32, SrtpSuite, [u8; MASTER_LEN]); 2],
}

impl std::fmt::Debug for SdesOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdesOffer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SdesOffer {
    /// A new offer with fresh random keys (one per suite).
    pub fn new(policy: SdesPolicy) -> Self {
        let mut k80 = [0u8; MASTER_LEN];
        let mut k32 = [0u8; MASTER_LEN];
        rand::fill(&mut k80);
        rand::fill(&mut k32);
        SdesOffer {
            policy,
            keys: [
                (1, SrtpSuite::AesCm128HmacSha1_80, k80),
                (2, SrtpSuite::AesCm128HmacSha1_32, k32),
            ],
        }
    }

    /// `sdp` (our plain offer) with the crypto lines added after the audio stream's
    /// attributes and, when SRTP is required, the `RTP/SAVP` profile.
    pub fn apply(&self, sdp: &str) -> String {
        let lines = self.keys.iter().map(|(tag, suite, key)| {
            format!("{tag} {} inline:{}", suite.name(), STANDARD.encode(key))
        });
        with_crypto(sdp, self.policy == SdesPolicy::Required, lines)
    }

    /// Reads the answer's crypto line: `Ok(Some(keys))` for SRTP, `Ok(None)` for plain RTP
    /// (only when SRTP is optional), `Err` when the answer cannot be used.
    pub fn read_answer(&self, answer: &str) -> Result<Option<SrtpKeys>, SdesError> {
        let Some(line) = audio_crypto_lines(answer).next() else {
            return match self.policy {
                SdesPolicy::Required => Err(SdesError::NotAccepted),
                SdesPolicy::Optional => Ok(None),
            };
        };
        let c = parse_crypto(line).map_err(SdesError::Unusable)?;
        let (_, suite, local) = self
            .keys
            .iter()
            .find(|(tag, suite, _)| *tag == c.tag && *suite == c.suite)
            .ok_or_else(|| {
                SdesError::Unusable(format!(
                    "tag {} with {} was not offered",
                    c.tag,
                    c.suite.name()
                ))
            })?;
        Ok(Some(SrtpKeys {
            suite: *suite,
            local: *local,
            remote: c.key,
        }))
    }
}

impl SdesOffer {
    /// Our key for `suite` (each offered suite has its own).
    fn local_key(&self, suite: SrtpSuite) -> [u8; MASTER_LEN] {
        self.keys
            .iter()
            .find(|(_, s, _)| *s == suite)
            .map(|(_, _, k)| *k)
            .unwrap_or(self.keys[0].2)
    }
}

#[path = "sdes_reinvite.rs"]
mod reinvite;
pub use reinvite::{SdesReanswer, secure_answer};

/// The `a=crypto:` values of the first audio stream (or before any `m=` line).
fn audio_crypto_lines(sdp: &str) -> impl Iterator<Item = &str> {
    let mut in_other_media = false;
    let mut seen_audio = false;
    sdp.lines().filter_map(move |l| {
        let l = l.trim_end_matches('\r');
        if let Some(m) = l.strip_prefix("m=") {
            in_other_media = seen_audio || !m.starts_with("audio");
            seen_audio = seen_audio || m.starts_with("audio");
            return None;
        }
        if in_other_media {
            return None;
        }
        l.strip_prefix("a=crypto:")
    })
}

/// One parsed `a=crypto` value.
#[derive(Debug, PartialEq, Eq)]
struct Crypto {
    tag: u32,
    suite: SrtpSuite,
    key: [u8; MASTER_LEN],
}

/// `1 AES_CM_128_HMAC_SHA1_80 inline:<base64>[|lifetime][|MKI:len] [session params]`.
fn parse_crypto(value: &str) -> Result<Crypto, String> {
    let mut parts = value.split_whitespace();
    let tag = parts
        .next()
        .and_then(|t| t.parse::<u32>().ok())
        .ok_or_else(|| format!("bad tag in `{value}`"))?;
    let suite_name = parts.next().unwrap_or_default();
    let suite =
        SrtpSuite::from_name(suite_name).ok_or_else(|| format!("unknown suite `{suite_name}`"))?;
    let params = parts.next().unwrap_or_default();
    // Only one key: several `inline:` keys joined by ';' need MKIs, which we do not offer.
    if params.contains(';') {
        return Err("several master keys (MKI) are not supported".into());
    }
    let inline = params
        .strip_prefix("inline:")
        .ok_or_else(|| "no inline: key".to_owned())?;
    let mut fields = inline.split('|');
    let b64 = fields.next().unwrap_or_default();
    for f in fields {
        if f.contains(':') {
            return Err("MKI is not supported".into());
        }
    }
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| "the key is not base64".to_owned())?;
    let key: [u8; MASTER_LEN] = raw
        .try_into()
        .map_err(|_| format!("the key is not {MASTER_LEN} bytes"))?;
    Ok(Crypto { tag, suite, key })
}

/// `sdp` (one audio stream) with an `a=crypto:<line>` attribute per line appended after the
/// stream's attributes and, with `savp`, the `RTP/SAVP` profile instead of `RTP/AVP`.
fn with_crypto(sdp: &str, savp: bool, lines: impl Iterator<Item = String>) -> String {
    let body = if savp {
        sdp.replacen(" RTP/AVP ", " RTP/SAVP ", 1)
    } else {
        sdp.to_owned()
    };
    let mut out = String::with_capacity(body.len() + 160);
    out.push_str(body.trim_end_matches(['\r', '\n']));
    out.push_str("\r\n");
    for line in lines {
        out.push_str(&format!("a=crypto:{line}\r\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "v=0\r\no=dialgate 1 1 IN IP4 127.0.0.1\r\ns=dialgate\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=sendrecv\r\n";

    fn answer(crypto: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 5000 RTP/SAVP 0\r\n{crypto}a=sendrecv\r\n"
        )
    }

    #[test]
    fn required_offer_is_savp_with_two_suites() {
        // 1. The profile changes and both suites are offered with distinct keys.
        let o = SdesOffer::new(SdesPolicy::Required);
        let sdp = o.apply(PLAIN);
        assert!(sdp.contains("m=audio 4000 RTP/SAVP 0 8 101"), "{sdp}");
        assert!(sdp.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"));
        // 2. The offer still parses as SDP.
        assert!(crate::sip::sdp::parse(&sdp).is_ok());
        // 3. Optional keeps RTP/AVP.
        let o = SdesOffer::new(SdesPolicy::Optional);
        assert!(o.apply(PLAIN).contains("RTP/AVP 0 8 101"));
    }

    #[test]
    fn the_answer_picks_a_tag_and_gives_its_key() {
        let o = SdesOffer::new(SdesPolicy::Required);
        let peer = [5u8; MASTER_LEN];
        let line = format!(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{}|2^31\r\n",
            STANDARD.encode(peer)
        );
        let keys = o
            .read_answer(&answer(&line))
            .expect("usable")
            .expect("srtp");
        assert_eq!(keys.suite, SrtpSuite::AesCm128HmacSha1_32);
        assert_eq!(keys.remote, peer);
        assert_eq!(keys.local, o.keys[1].2);
    }

    #[test]
    fn answers_without_srtp_or_with_bad_lines() {
        // 1. No crypto: refused when required, plain RTP when optional.
        let req = SdesOffer::new(SdesPolicy::Required);
        assert_eq!(req.read_answer(&answer("")), Err(SdesError::NotAccepted));
        let opt = SdesOffer::new(SdesPolicy::Optional);
        assert_eq!(opt.read_answer(&answer("")), Ok(None));
        // 2. A tag/suite pair we did not offer, a short key, an MKI.
        let k = STANDARD.encode([1u8; MASTER_LEN]);
        for bad in [
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{k}\r\n"),
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n".to_owned(),
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^20|1:4\r\n"),
            format!("a=crypto:1 F8_128_HMAC_SHA1_80 inline:{k}\r\n"),
        ] {
            assert!(
                matches!(opt.read_answer(&answer(&bad)), Err(SdesError::Unusable(_))),
                "{bad}"
            );
        }
    }
}
