//! SDES on a re-INVITE from the carrier (RFC 4568 §7.1.4): the offer's crypto lines are read
//! as a new offer, and dialgate's answer carries the leg's crypto line again. Our key stays
//! the one the leg already uses (a new key is only made for a suite the leg did not use yet);
//! the carrier's key may change, and then the relay's inbound context is re-keyed. An offer
//! without crypto on a `required` trunk is refused (488).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{SdesError, SdesOffer, SdesPolicy, audio_crypto_lines, parse_crypto};
use crate::core::srtp::SrtpKeys;

/// How dialgate answers one re-INVITE offer on an SDES leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesReanswer {
    /// The answer's `a=crypto:` value (tag of the offer's line, its suite, our key); `None`:
    /// plain RTP (only with `srtp: optional` and an offer without crypto).
    pub crypto: Option<String>,
    /// The keys of the leg from now on (`None`: plain RTP).
    pub keys: Option<SrtpKeys>,
    /// The offer's audio stream is `RTP/SAVP`: the answer must be too.
    pub savp: bool,
}

impl SdesReanswer {
    /// Whether the relay's SRTP must change from `current` (a new peer key, a new suite, or
    /// SRTP switched on or off).
    pub fn changes(&self, current: Option<&SrtpKeys>) -> bool {
        self.keys.as_ref() != current
    }
}

impl SdesOffer {
    /// Reads a carrier's re-INVITE offer on this leg, whose SRTP keys are `current` (`None`:
    /// plain RTP so far). `Err`: the offer cannot be answered (the re-INVITE gets 488).
    pub fn answer_reoffer(
        &self,
        offer: &str,
        current: Option<&SrtpKeys>,
    ) -> Result<SdesReanswer, SdesError> {
        let savp = audio_profile_is_savp(offer);
        let lines: Vec<&str> = audio_crypto_lines(offer).collect();
        if lines.is_empty() {
            return match self.policy {
                SdesPolicy::Required => Err(SdesError::OfferWithoutCrypto),
                SdesPolicy::Optional => Ok(SdesReanswer {
                    crypto: None,
                    keys: None,
                    savp,
                }),
            };
        }
        // RFC 4568 §7.1.4 / §7.2: the answerer picks one acceptable line; the suite in use is
        // preferred so that our key can stay as it is.
        let usable: Vec<_> = lines.iter().filter_map(|l| parse_crypto(l).ok()).collect();
        let pick = usable
            .iter()
            .find(|c| current.is_some_and(|k| k.suite == c.suite))
            .or_else(|| usable.first());
        let Some(c) = pick else {
            if self.policy == SdesPolicy::Optional && !savp {
                // A best-effort (RTP/AVP) offer whose crypto we cannot use: plain RTP.
                return Ok(SdesReanswer {
                    crypto: None,
                    keys: None,
                    savp,
                });
            }
            return Err(SdesError::Unusable(
                "no crypto line of the re-INVITE offer is usable".into(),
            ));
        };
        let local = match current {
            Some(k) if k.suite == c.suite => k.local,
            _ => self.local_key(c.suite),
        };
        Ok(SdesReanswer {
            crypto: Some(format!(
                "{} {} inline:{}",
                c.tag,
                c.suite.name(),
                STANDARD.encode(local)
            )),
            keys: Some(SrtpKeys {
                suite: c.suite,
                local,
                remote: c.key,
            }),
            savp,
        })
    }
}

/// `answer` (dialgate's plain SDP answer, one audio stream) with the crypto line of `re` and
/// the `RTP/SAVP` profile when the offer had it.
pub fn secure_answer(answer: &str, re: &SdesReanswer) -> String {
    match &re.crypto {
        Some(crypto) => super::with_crypto(answer, re.savp, std::iter::once(crypto.clone())),
        None => answer.to_owned(),
    }
}

/// The first audio stream's transport profile is `RTP/SAVP`.
fn audio_profile_is_savp(sdp: &str) -> bool {
    sdp.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().nth(1))
        .is_some_and(|p| p.eq_ignore_ascii_case("RTP/SAVP"))
}

#[cfg(test)]
#[path = "sdes_reinvite_tests.rs"]
mod tests;
