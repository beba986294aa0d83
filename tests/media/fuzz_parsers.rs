//! Deterministic mutation fuzzing of the parsers dialgate owns: none may panic
//! on any input, and mutants of valid input must still be judged sensibly.
//! (The SDP parser has its own loop in `src/sip/sdp_tests.rs`.)

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, inserts, deletes and duplicates bytes of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            _ if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = a + rng.below(v.len() - a);
                let chunk = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    v
}

#[test]
fn dialout_body_parser_never_panics() {
    let seeds: [&[u8]; 3] = [
        br#"{"bot":"b","target":"tel:+15551234567","caller":"+15550001111","callerHost":"example.com","callerDisplayName":"Acme","notifyUrl":"https://d.example/n","machineDetection":"detect","answerTimeoutSec":20,"metadata":{"k":[1,2,{"x":null}]},"headers":{"X-A":"1"}}"#,
        br#"{"bot":"b","target":"sip:alice@example.com;transport=tcp"}"#,
        br#"{"bot":"b","target":"+15551234567","answerTimeoutSec":1e400}"#,
    ];
    let mut rng = Rng(0x5eed_1234);
    let (mut ok, mut rejected) = (0, 0);
    for i in 0..30_000 {
        let input = mutate(&mut rng, seeds[i % seeds.len()]);
        match dialgate::api::dialout::parse(&input) {
            Ok(r) => {
                ok += 1;
                // Whatever is accepted is well-formed enough to route and dial.
                assert!(!r.bot.trim().is_empty());
                assert!(
                    !r.target.routing_key().is_empty(),
                    "{:?} from {}",
                    r.target,
                    String::from_utf8_lossy(&input)
                );
            }
            Err(e) => {
                rejected += 1;
                // Every refusal is a client error with a message.
                assert_eq!(e.status().as_u16() / 100, 4, "{e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(ok > 100 && rejected > 100, "ok {ok}, rejected {rejected}");
}

#[test]
fn rtp_and_rtcp_parsers_never_panic() {
    let mut pkt = vec![
        0x80u8, 0x00, 0x12, 0x34, 0, 0, 0x03, 0x20, 0xde, 0xad, 0xbe, 0xef,
    ];
    pkt.extend(std::iter::repeat_n(0xffu8, 160));
    let mut ext = vec![
        0x90u8, 0x08, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0,
    ];
    ext.extend(std::iter::repeat_n(0xd5u8, 160));
    let rtcp = [
        0x80u8, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5,
    ];
    let mut rng = Rng(0xfeed_beef);
    let mut parsed = 0;
    for i in 0..50_000 {
        let seed: &[u8] = match i % 3 {
            0 => &pkt,
            1 => &ext,
            _ => &rtcp,
        };
        let input = mutate(&mut rng, seed);
        if let Some(v) = dialgate::media::rtp::parse_rtp(&input) {
            parsed += 1;
            let _ = v;
        }
        let _ = dialgate::media::rtp::valid_rtcp(&input);
    }
    assert!(parsed > 1000, "parsed {parsed}");
}

#[test]
fn signature_header_parser_never_panics() {
    let good = dialgate::webhook::sign::signature(b"k", 1_700_000_000, b"{}");
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let h = mutate(&mut rng, good.as_bytes());
        let h = String::from_utf8_lossy(&h);
        let _ = dialgate::webhook::sign::verify(b"k", &h, b"{}", 1_700_000_000, 300);
    }
}
