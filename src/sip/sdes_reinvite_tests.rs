//! The answer to a carrier's re-INVITE on an SDES leg: which line is taken, which key we give,
//! when the relay must be re-keyed, and what is refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::core::srtp::SrtpSuite;

const PLAIN: &str = "v=0\r\no=dialgate 1 1 IN IP4 127.0.0.1\r\ns=dialgate\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=sendrecv\r\n";

/// A carrier offer with `profile` and the crypto lines `crypto`.
fn offer(profile: &str, crypto: &str) -> String {
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 5000 {profile} 0 101\r\na=rtpmap:0 PCMU/8000\r\n{crypto}a=sendrecv\r\n"
    )
}

fn line(tag: u32, suite: SrtpSuite, key: [u8; 30]) -> String {
    format!(
        "a=crypto:{tag} {} inline:{}\r\n",
        suite.name(),
        STANDARD.encode(key)
    )
}

/// The keys the leg got from the first answer (the carrier took tag 1 with key `peer`).
fn in_use(o: &SdesOffer, peer: [u8; 30]) -> SrtpKeys {
    let first = o
        .read_answer(&offer(
            "RTP/SAVP",
            &line(1, SrtpSuite::AesCm128HmacSha1_80, peer),
        ))
        .expect("usable")
        .expect("srtp");
    assert_eq!(first.remote, peer);
    first
}

#[test]
fn the_same_keys_again_change_nothing_and_the_answer_keeps_our_key() {
    // 1. The leg runs AES_CM_128_HMAC_SHA1_80 with the carrier's key [3; 30].
    let o = SdesOffer::new(SdesPolicy::Required);
    let cur = in_use(&o, [3; 30]);
    // 2. The re-INVITE offers the same key under tag 7 (tags are per offer).
    let re = o
        .answer_reoffer(
            &offer(
                "RTP/SAVP",
                &line(7, SrtpSuite::AesCm128HmacSha1_80, [3; 30]),
            ),
            Some(&cur),
        )
        .expect("answered");
    // 3. Same keys: the relay is left alone; our line names the offer's tag and our old key.
    assert!(!re.changes(Some(&cur)));
    let expected = format!(
        "7 AES_CM_128_HMAC_SHA1_80 inline:{}",
        STANDARD.encode(cur.local)
    );
    assert_eq!(re.crypto.as_deref(), Some(expected.as_str()));
    assert!(re.savp);
}

#[test]
fn a_new_carrier_key_rekeys_inbound_only() {
    let o = SdesOffer::new(SdesPolicy::Required);
    let cur = in_use(&o, [3; 30]);
    // 1. The carrier's re-offer lists the _32 suite first, then _80 with a new key.
    let crypto = format!(
        "{}{}",
        line(1, SrtpSuite::AesCm128HmacSha1_32, [8; 30]),
        line(2, SrtpSuite::AesCm128HmacSha1_80, [9; 30])
    );
    let re = o
        .answer_reoffer(&offer("RTP/SAVP", &crypto), Some(&cur))
        .expect("answered");
    // 2. The suite in use is kept (tag 2), with our key unchanged and the carrier's new one.
    let keys = re.keys.expect("srtp");
    assert_eq!(keys.suite, SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!((keys.local, keys.remote), (cur.local, [9; 30]));
    assert!(re.changes(Some(&cur)));
    assert!(re.crypto.as_deref().is_some_and(|c| c.starts_with("2 ")));
}

#[test]
fn another_suite_takes_our_key_of_that_suite() {
    // 1. The re-offer only has the _32 suite: our key of the _32 suite from our first offer.
    let o = SdesOffer::new(SdesPolicy::Required);
    let cur = in_use(&o, [3; 30]);
    let re = o
        .answer_reoffer(
            &offer(
                "RTP/SAVP",
                &line(1, SrtpSuite::AesCm128HmacSha1_32, [4; 30]),
            ),
            Some(&cur),
        )
        .expect("answered");
    let keys = re.keys.expect("srtp");
    assert_eq!(keys.suite, SrtpSuite::AesCm128HmacSha1_32);
    assert_eq!(keys.local, o.local_key(SrtpSuite::AesCm128HmacSha1_32));
    assert_ne!(keys.local, cur.local);
}

#[test]
fn an_offer_without_crypto_is_refused_when_required_and_plain_when_optional() {
    // 1. Required: 488 material.
    let req = SdesOffer::new(SdesPolicy::Required);
    let cur = in_use(&req, [3; 30]);
    assert_eq!(
        req.answer_reoffer(&offer("RTP/AVP", ""), Some(&cur)),
        Err(SdesError::OfferWithoutCrypto)
    );
    // 2. Optional: plain RTP from now on (the relay drops SRTP).
    let opt = SdesOffer::new(SdesPolicy::Optional);
    let cur = in_use(&opt, [3; 30]);
    let re = opt
        .answer_reoffer(&offer("RTP/AVP", ""), Some(&cur))
        .expect("answered");
    assert_eq!((re.crypto.as_deref(), re.keys), (None, None));
    assert!(re.changes(Some(&cur)));
    // 3. Only unusable lines: refused on a SAVP offer, plain on a best-effort one.
    let bad = "a=crypto:1 F8_128_HMAC_SHA1_80 inline:AAAA\r\n";
    assert!(matches!(
        req.answer_reoffer(&offer("RTP/SAVP", bad), None),
        Err(SdesError::Unusable(_))
    ));
    assert_eq!(
        opt.answer_reoffer(&offer("RTP/AVP", bad), None)
            .map(|r| r.keys),
        Ok(None)
    );
}

#[test]
fn the_answer_sdp_carries_the_crypto_line_and_the_offers_profile() {
    let o = SdesOffer::new(SdesPolicy::Required);
    let cur = in_use(&o, [3; 30]);
    // 1. A SAVP offer: the answer is SAVP with one crypto line after the stream's attributes.
    let re = o
        .answer_reoffer(
            &offer(
                "RTP/SAVP",
                &line(1, SrtpSuite::AesCm128HmacSha1_80, [5; 30]),
            ),
            Some(&cur),
        )
        .expect("answered");
    let sdp = secure_answer(PLAIN, &re);
    assert!(sdp.contains("m=audio 4000 RTP/SAVP 0 8 101"), "{sdp}");
    assert!(sdp.ends_with(&format!(
        "a=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        STANDARD.encode(cur.local)
    )));
    assert_eq!(sdp.matches("a=crypto:").count(), 1);
    assert!(crate::sip::sdp::parse(&sdp).is_ok());
    // 2. A best-effort AVP offer keeps AVP; plain RTP leaves the answer as it was.
    let opt = SdesOffer::new(SdesPolicy::Optional);
    let re = opt
        .answer_reoffer(
            &offer("RTP/AVP", &line(1, SrtpSuite::AesCm128HmacSha1_80, [5; 30])),
            None,
        )
        .expect("answered");
    assert!(secure_answer(PLAIN, &re).contains("RTP/AVP 0 8 101"));
    let plain = SdesReanswer {
        crypto: None,
        keys: None,
        savp: false,
    };
    assert_eq!(secure_answer(PLAIN, &plain), PLAIN);
}
