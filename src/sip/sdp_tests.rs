//! SDP unit tests and a mutation fuzz loop (must never panic).

use super::*;
use rand::{Rng, SeedableRng};

const LINPHONE: &str = "v=0\r\no=bob 2890844527 2890844527 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 8 0 96 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendonly\r\n";

const MEDIA_LEVEL_V6: &str = "v=0\no=- 1 1 IN IP6 ::1\ns=-\nt=0 0\nm=video 5000 RTP/AVP 96\nc=IN IP6 ::2\na=inactive\nm=audio 6000 RTP/AVP 0\nc=IN IP6 ::1\na=rtcp:6003\na=inactive\n";

fn local() -> LocalSdp {
    LocalSdp {
        address: "127.0.0.1".parse().unwrap(),
        port: 20000,
        session_id: 42,
        version: 1,
    }
}

#[test]
fn parses_session_level_connection_and_codecs_in_order() {
    // 1. parse a typical offer with session-level c=
    let r = parse(LINPHONE).unwrap();
    // 2. address, ports, codec order, telephone-event, direction, ptime
    assert_eq!(r.address, "192.0.2.10".parse::<IpAddr>().unwrap());
    assert_eq!((r.port, r.rtcp_port), (49170, 49171));
    let pts: Vec<u8> = r.codecs.iter().map(|c| c.pt).collect();
    assert_eq!(pts, vec![8, 0, 96, 101]);
    assert_eq!(r.codecs[2].rate, 48000);
    assert_eq!(r.telephone_event, Some(101));
    assert_eq!(r.direction, Direction::SendOnly);
    assert_eq!(r.ptime, Some(20));
}

#[test]
fn parses_media_level_ipv6_inactive_and_rtcp_attribute() {
    // 1. LF-only line endings, audio is the second m= line, media-level c=
    let r = parse(MEDIA_LEVEL_V6).unwrap();
    assert_eq!(r.address, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(r.port, 6000);
    // 2. a=rtcp overrides port+1; a=inactive is recognised despite the sdp-rs typo
    assert_eq!(r.rtcp_port, 6003);
    assert_eq!(r.direction, Direction::Inactive);
    // 3. static payload type without rtpmap
    assert_eq!(
        r.codecs,
        vec![Codec {
            pt: 0,
            name: "PCMU".into(),
            rate: 8000
        }]
    );
}

#[test]
fn offer_has_g711_dtmf_and_only_local_address() {
    // 1. generate
    let o = offer(&local());
    // 2. it parses back to what we offered
    let r = parse(&o).unwrap();
    assert_eq!(r.address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!((r.port, r.rtcp_port), (20000, 20001));
    let pts: Vec<u8> = r.codecs.iter().map(|c| c.pt).collect();
    assert_eq!(pts, vec![0, 8, 101]);
    assert_eq!(r.direction, Direction::SendRecv);
    assert!(o.contains("a=fmtp:101 0-16\r\n"));
    assert!(o.contains("a=ptime:20\r\n"));
}

#[test]
fn answer_picks_offerers_first_g711_and_mirrors_direction() {
    // 1. answer an offer that prefers PCMA and is sendonly
    let (sdp, n) = answer(LINPHONE, &local()).unwrap();
    assert_eq!(n.codec.pt, 8);
    assert_eq!(n.telephone_event, Some(101));
    assert_eq!(n.direction, Direction::RecvOnly);
    // 2. the answer carries only our address and the chosen codecs
    let r = parse(&sdp).unwrap();
    assert_eq!(r.address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert!(!sdp.contains("192.0.2.10"));
    let pts: Vec<u8> = r.codecs.iter().map(|c| c.pt).collect();
    assert_eq!(pts, vec![8, 101]);
    assert_eq!(r.direction, Direction::RecvOnly);
}

#[test]
fn answer_keeps_offered_telephone_event_pt() {
    let offer_te96 = LINPHONE
        .replace("96 101", "100 96")
        .replace("a=rtpmap:101", "a=rtpmap:96")
        .replace("a=rtpmap:96 opus/48000/2", "a=rtpmap:100 opus/48000/2")
        .replace("fmtp:101", "fmtp:96");
    let (_sdp, n) = answer(&offer_te96, &local()).unwrap();
    assert_eq!(n.telephone_event, Some(96));
}

#[test]
fn no_common_codec_is_488() {
    // 1. an offer with only opus and G.729
    let bad = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 96\r\na=rtpmap:96 opus/48000/2\r\n";
    let e = answer(bad, &local()).unwrap_err();
    // 2. classified as 488
    assert!(matches!(e, SdpError::NoCommonCodec(_)));
    assert_eq!(e.sip_status(), 488);
    // 3. garbage is 400, no audio is 488
    assert_eq!(parse("hello").unwrap_err().sip_status(), 400);
    let video_only = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n";
    assert_eq!(parse(video_only).unwrap_err(), SdpError::NoAudio);
}

#[test]
fn read_answer_of_our_offer() {
    let ans = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    let n = read_answer(ans).unwrap();
    assert_eq!(n.codec.name, "PCMU");
    assert_eq!(n.direction, Direction::SendRecv);
}

#[test]
fn fuzz_mutations_never_panic() {
    // 1. deterministic seed; 20k mutated inputs derived from seed SDPs
    let seeds = [
        LINPHONE.to_string(),
        MEDIA_LEVEL_V6.to_string(),
        offer(&local()),
    ];
    let alphabet: &[u8] = b"=: /\r\n0123456789abcmtvoacsIPN4.-";
    let mut rng = rand::rngs::StdRng::seed_from_u64(4475);
    let mut parsed_ok = 0usize;
    for i in 0..20_000 {
        let mut bytes = seeds[i % seeds.len()].clone().into_bytes();
        for _ in 0..rng.random_range(1..8) {
            if bytes.is_empty() {
                break;
            }
            let pos = rng.random_range(0..bytes.len());
            match rng.random_range(0..4) {
                0 => bytes[pos] = alphabet[rng.random_range(0..alphabet.len())],
                1 => {
                    bytes.remove(pos);
                }
                2 => bytes.insert(pos, rng.random()),
                _ => {
                    let end = (pos + rng.random_range(0..40)).min(bytes.len());
                    let chunk: Vec<u8> = bytes[pos..end].to_vec();
                    bytes.splice(pos..pos, chunk);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        // 2. neither entry point may panic
        if parse(&text).is_ok() {
            parsed_ok += 1;
        }
        let _ = answer(&text, &local());
    }
    // 3. the loop really exercised the success path too
    assert!(parsed_ok > 100, "only {parsed_ok} mutants parsed");
}

#[test]
fn ipv6_in_brackets_is_read_and_ours_is_written_plain() {
    // 1. SIPp writes `IN IP6 [::1]` in o= and c=: read as ::1.
    let sipp = "v=0\no=uas 1 1 IN IP6 [::1]\ns=-\nc=IN IP6 [::1]\nt=0 0\nm=audio 6000 RTP/AVP 0\n";
    let r = parse(sipp).unwrap();
    assert_eq!(r.address, "::1".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(r.port, 6000);
    // 2. Our offer on an IPv6 leg: IP6 in o= and c=, no brackets.
    let o = offer(&LocalSdp {
        address: "::1".parse().unwrap(),
        ..local()
    });
    assert!(
        o.contains(" IN IP6 ::1\r\n") && o.contains("c=IN IP6 ::1\r\n"),
        "{o}"
    );
}
