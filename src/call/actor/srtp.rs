//! SDES-SRTP on the carrier leg: the offer's keys (made when the INVITE is built) and the
//! answer's choice, handed to the relay before it forwards a packet to or from the carrier.

use super::Actor;
use crate::config::SrtpMode;
use crate::media::Leg;
use crate::sip::sdes::{SdesOffer, SdesPolicy, SdesReanswer};

impl Actor {
    /// Adds `a=crypto` (and `RTP/SAVP` when required) to the carrier offer for a trunk with
    /// `srtp`, keeping the fresh keys to read the answer.
    pub(super) fn secure_offer(&mut self, mode: SrtpMode, offer: &str) -> String {
        let policy = match mode {
            SrtpMode::Off => {
                self.carrier_sdes = None;
                return offer.to_owned();
            }
            SrtpMode::Optional => SdesPolicy::Optional,
            SrtpMode::Required => SdesPolicy::Required,
        };
        let sdes = SdesOffer::new(policy);
        let secured = sdes.apply(offer);
        self.carrier_sdes = Some(sdes);
        secured
    }

    /// Applies the carrier's SDP (early or final) to the relay's SRTP. `Err` says why the
    /// answer cannot be used (required SRTP refused, a bad crypto line, no libsrtp2).
    pub(super) async fn apply_carrier_srtp(&mut self, sdp: &str) -> Result<(), String> {
        let Some(sdes) = &self.carrier_sdes else {
            return Ok(());
        };
        let keys = sdes.read_answer(sdp).map_err(|e| e.to_string())?;
        let Some(m) = &self.media else {
            return Ok(());
        };
        let note = match &keys {
            Some(k) => format!("SRTP {} with the carrier", k.suite.name()),
            None => "the carrier answered without SRTP: plain RTP (srtp: optional)".to_owned(),
        };
        m.set_srtp(Leg::Carrier, keys)
            .map_err(|e| format!("SRTP: {e}"))?;
        self.carrier_srtp = keys;
        self.timeline("srtp", &note).await;
        Ok(())
    }

    /// The SDES side of the carrier's re-INVITE offer: `Ok(None)` when the leg has no SDES,
    /// `Err` (the re-INVITE gets 488) when the offer cannot be answered on this trunk.
    pub(super) fn carrier_reoffer_srtp(&self, offer: &str) -> Result<Option<SdesReanswer>, String> {
        let Some(sdes) = &self.carrier_sdes else {
            return Ok(None);
        };
        sdes.answer_reoffer(offer, self.carrier_srtp.as_ref())
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// Applies an accepted re-offer's keys to the relay when they changed (RFC 4568 §7.1.4: the
    /// carrier may re-key; our own key stays, so the relay keeps its outbound context).
    pub(super) fn apply_reoffer_srtp(&mut self, re: &SdesReanswer) -> Result<(), String> {
        if !re.changes(self.carrier_srtp.as_ref()) {
            return Ok(());
        }
        if let Some(m) = &self.media {
            m.set_srtp(Leg::Carrier, re.keys)
                .map_err(|e| format!("SRTP: {e}"))?;
        }
        self.carrier_srtp = re.keys;
        match re.keys {
            Some(k) => tracing::info!(
                suite = k.suite.name(),
                "carrier SRTP re-keyed by a re-INVITE"
            ),
            None => tracing::info!("carrier re-INVITE without SRTP: plain RTP (srtp: optional)"),
        }
        Ok(())
    }
}
