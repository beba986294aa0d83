//! IPv6 end to end (issue 16 item 6) on `::1`: dialgate listening on IPv6 (and IPv4), a SIPp
//! carrier on `::1` that streams audio and hangs up, a SIPp bot echoing RTP, the relay's counters
//! showing audio both ways. A call may mix an IPv6 carrier and an IPv4 bot: each leg's Via,
//! Contact, SDP and relay socket follow its peer.
//!
//! (The pjsua2 wheel of the peers' venv is built without IPv6 media — `PJ_HAS_IPV6` off: it
//! answers an INVITE on a UDP6 transport with 500 — so SIPp plays both IPv6 peers here.)
//!
//! Port plan of this file: dialgate's relay RTP 37000-37599 (200 per test), SIPp media ports
//! 47400-47599 (100 per test: carrier at +0, bot at +50), SIP ports picked free.

use crate::common;
use common::peers::Sipp;
use common::simcall::samples;
use common::sippflows::{
    Flow, FlowSetup, FlowStart, Trunk, finish, passed, scenario, sip_messages, start_flow_custom,
    write_ulaw,
};
use serde_json::{Value, json};

/// Relay RTP range and SIPp media port base of test number `n` (0-based).
fn ports(n: u16) -> (u16, u16) {
    (37000 + 200 * n, 47400 + 100 * n)
}

/// `sip:user@host:port` with an IPv6 host in brackets.
fn uri(user: &str, ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("sip:{user}@[{ip}]:{port}")
    } else {
        format!("sip:{user}@{ip}:{port}")
    }
}

/// The carrier: `flow_carrier_answer_bye.xml` streaming "Hello? Who is this?" (µ-law, twice)
/// after the ACK and hanging up 5 s later; SIPp on `ip`.
fn carrier(dir: &std::path::Path, ip: &str, media_port: u16) -> Sipp {
    let audio = write_ulaw(dir, "greeting.ulaw", &samples("conf/greeting.wav"));
    let xml = std::fs::read_to_string(scenario("flow_carrier_answer_bye.xml"))
        .unwrap()
        .replace(
            r#"<pause milliseconds="3000"/>"#,
            &format!(
                r#"<nop><action><exec rtp_stream="{},2,0"/></action></nop>
  <pause milliseconds="5000"/>"#,
                audio.display()
            ),
        );
    assert!(xml.contains("rtp_stream"), "scenario edited");
    let file = dir.join("carrier.xml");
    std::fs::write(&file, xml).unwrap();
    sipp_on(&file, ip, media_port, &[])
}

/// The bot: `flow_bot_answer.xml` on `ip`, echoing every RTP packet (`-rtp_echo`).
fn bot(ip: &str, media_port: u16) -> Sipp {
    sipp_on(
        &scenario("flow_bot_answer.xml"),
        ip,
        media_port,
        &["-rtp_echo"],
    )
}

/// SIPp playing `xml` for one call on `ip` (SIP and media, media on `media_port`), with the
/// `extra` arguments; it gives up after 40 s.
fn sipp_on(xml: &std::path::Path, ip: &str, media_port: u16, extra: &[&str]) -> Sipp {
    let mp = media_port.to_string();
    let mut args = vec!["-i", ip, "-mi", ip, "-mp", &mp];
    args.extend_from_slice(extra);
    args.extend(["-m", "1", "-timeout", "40s", "-timeout_error"]);
    Sipp::spawn(xml, &args).expect("sipp starts")
}

/// dialgate on `listen` (YAML addresses), calling through a trunk at `trunk` and the bot at
/// `bot_uri`; the SIPp flow kit's helpers then drive it.
async fn start(listen: &[&str], trunk: String, bot_uri: String, rtp: (u16, u16)) -> Flow {
    start_flow_custom(
        FlowSetup {
            rtp,
            bot_port: 0,
            trunk: Trunk {
                address: trunk,
                ..Default::default()
            },
        },
        FlowStart {
            listen,
            bot_uri: Some(&bot_uri),
            ..Default::default()
        },
    )
    .await
}

/// A call whose SIPp peers have run their scenarios to the end.
struct Call {
    flow: Flow,
    id: String,
    carrier_trace: String,
    bot_trace: String,
}

/// Test `n`'s call ([`ports`]): the carrier ([`carrier`]) on ::1, the bot ([`bot`]) on
/// `bot_ip`, dialgate listening on `listen`. Dials, then waits for both SIPp scenarios to
/// pass (the carrier streams, then hangs up).
async fn carrier_on_ipv6_calls(n: u16, listen: &[&str], bot_ip: &str) -> Call {
    let (rtp, media) = ports(n);
    let tmp = tempfile::tempdir().unwrap();
    let c = carrier(tmp.path(), "::1", media);
    let b = bot(bot_ip, media + 50);
    let flow = start(
        listen,
        format!("[::1]:{}", c.port),
        uri("bot", bot_ip, b.port),
        (rtp, rtp + 199),
    )
    .await;
    let id = flow.dial("+15551230001", json!({})).await;
    let (code, carrier_trace) = finish(&c).await;
    assert_eq!(code, 0, "carrier scenario");
    let bot_trace = passed(&b, "bot scenario").await;
    Call {
        flow,
        id,
        carrier_trace,
        bot_trace,
    }
}

impl Call {
    /// The carrier's BYE ended the call (client-disconnected, the record settled), and the
    /// relay carried audio both ways. Stops the flow.
    async fn ended_by_the_carrier_with_audio_both_ways(self) {
        let rec = self.flow.settled(&self.id).await;
        assert_eq!(rec["reasonCode"], "client-disconnected", "{rec:#}");
        assert_audio_both_ways(&rec);
        self.flow.stop().await;
    }
}

/// The first message of a SIPp trace whose label is `label` (`"<INVITE"`: a received INVITE).
fn message(trace: &str, label: &str) -> String {
    sip_messages(trace)
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, text)| text)
        .unwrap_or_else(|| panic!("no {label} in\n{trace}"))
}

/// A counter of one leg in the call record's `media`.
fn count(rec: &Value, leg: &str, key: &str) -> u64 {
    rec["media"][leg][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no media.{leg}.{key} in {rec:#}"))
}

/// The relay received and forwarded audio on both legs: the carrier's stream went to the bot,
/// the bot's echo came back to the carrier.
fn assert_audio_both_ways(rec: &Value) {
    for leg in ["carrier", "bot"] {
        let (rcvd, fwd) = (
            count(rec, leg, "packetsReceived"),
            count(rec, leg, "packetsForwarded"),
        );
        eprintln!("{leg}: received {rcvd}, forwarded {fwd}");
        assert!(rcvd > 50 && fwd > 50, "{leg}: {}", rec["media"][leg]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_carrier_and_an_ipv4_bot_talk_through_the_relay() {
    // 1. The carrier (SIPp) on ::1, the bot (SIPp, echoing RTP) on 127.0.0.1; dialgate listens
    //    on both families.
    // 2. The carrier streams, then hangs up: SIPp ran its scenario to the end, and so did the bot.
    let call = carrier_on_ipv6_calls(0, &["127.0.0.1:0", "[::1]:0"], "127.0.0.1").await;
    let (carrier_trace, bot_trace) = (&call.carrier_trace, &call.bot_trace);

    // 3. The carrier's INVITE names dialgate by IPv6 everywhere: Via, Contact, From, o=, c=;
    //    the bot's INVITE by IPv4.
    let inv = message(carrier_trace, "<INVITE");
    for want in [
        "Via: SIP/2.0/UDP [::1]:",
        "Contact: <sip:flow-bot@[::1]:",
        "c=IN IP6 ::1",
        " IN IP6 ::1\n",
    ] {
        assert!(inv.contains(want), "{want} in\n{inv}");
    }
    let bot_inv = message(bot_trace, "<INVITE");
    for want in ["Via: SIP/2.0/UDP 127.0.0.1:", "c=IN IP4 127.0.0.1"] {
        assert!(bot_inv.contains(want), "{want} in\n{bot_inv}");
    }

    // 4. Audio both ways through the relay; the carrier's BYE ended the call, once.
    call.ended_by_the_carrier_with_audio_both_ways().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_ipv6_call_on_loopback() {
    // 1. dialgate listens on [::1] only; carrier and bot on ::1.
    // 2. Both scenarios complete; both INVITEs offer the relay on ::1.
    let call = carrier_on_ipv6_calls(1, &["[::1]:0"], "::1").await;
    for trace in [&call.carrier_trace, &call.bot_trace] {
        let inv = message(trace, "<INVITE");
        assert!(inv.contains("c=IN IP6 ::1"), "{inv}");
        assert!(inv.contains("Via: SIP/2.0/UDP [::1]:"), "{inv}");
    }

    // 3. Audio both ways; the carrier's BYE ended the call.
    call.ended_by_the_carrier_with_audio_both_ways().await;
}

#[test]
fn an_ipv6_wildcard_listener_needs_public_address_v6() {
    use dialgate::config;
    let text = "server:\n  sip:\n    listen:\n      - { transport: udp, address: \"127.0.0.1:5060\" }\n      - { transport: udp, address: \"[::]:5060\" }\n  http: { plain_http: true }\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dialgate.yaml");
    // 1. `[::]` beside an IPv4 public address, no public_address_v6: error at that listener.
    std::fs::write(&file, text).unwrap();
    let e = config::load(&file).unwrap_err();
    assert_eq!(e.errors()[0].path, "server.sip.listen[1].address", "{e}");
    // 2. With public_address_v6 it loads; an IPv4 value there is refused at the key.
    let with = |v: &str| {
        text.replace(
            "  http:",
            &format!("    public_address_v6: \"{v}\"\n  http:"),
        )
    };
    std::fs::write(&file, with("2001:db8::10")).unwrap();
    let c = config::load(&file).unwrap();
    assert_eq!(
        c.server.sip.public_address_v6,
        Some("2001:db8::10".parse().unwrap())
    );
    std::fs::write(&file, with("192.0.2.10")).unwrap();
    let e = config::load(&file).unwrap_err();
    assert_eq!(e.errors()[0].path, "server.sip.public_address_v6", "{e}");
    // 3. A bracketed literal listener ([::1]:5060) needs nothing more.
    std::fs::write(&file, text.replace("[::]:5060", "[::1]:5060")).unwrap();
    assert!(config::load(&file).is_ok());
}
