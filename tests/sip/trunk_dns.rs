//! Trunks given by domain name (RFC 3263) against a real DNS server: dnsmasq on loopback serves
//! NAPTR, SRV and A records for `carrier.test`; SIPp plays the carrier's servers. Covers the
//! resolver (NAPTR → SRV by priority → A, explicit ports and transports, NXDOMAIN, timeouts,
//! the TTL cache), whole calls failing over from a 503 target to the next SRV target, a trunk
//! that does not resolve, and what `dialgate check` prints.
//! Ports: SIP 18600-18639, relay RTP 33600-33899; DNS on free ports.

use crate::common;
use std::process::Command;
use std::time::Duration;

use common::binary::stdout_of_success;
use common::peers::{DnsRecords, Dnsmasq};
use common::sippflows::*;
use dialgate::core::Transport;
use dialgate::sip::dns::{DnsError, DnsSettings, DnsTarget, Found, TrunkHost, TrunkResolver};
use serde_json::json;

fn resolver(server: &Dnsmasq) -> TrunkResolver {
    TrunkResolver::new(&DnsSettings {
        servers: vec![server.addr],
        timeout: Duration::from_secs(3),
    })
}

fn host(s: &str, transport: Transport, naptr: bool) -> TrunkHost {
    TrunkHost::parse(s, transport, naptr)
}

/// The targets `r` finds for the trunk host `s` (see [`host`]).
async fn resolve(r: &TrunkResolver, s: &str, transport: Transport, naptr: bool) -> Vec<DnsTarget> {
    r.resolve(&host(s, transport, naptr)).await.unwrap()
}

/// `(transport, port, how found)` of each target.
fn summary(targets: &[DnsTarget]) -> Vec<(Transport, u16, Found)> {
    targets
        .iter()
        .map(|t| (t.transport, t.addr.port(), t.found))
        .collect()
}

/// NAPTR for carrier.test: UDP first (order 10), then TCP (order 20). UDP SRV: a (priority 10)
/// and b (priority 20), listed b first; TCP SRV: c.
fn carrier_records(a_port: u16, b_port: u16, c_port: u16) -> DnsRecords {
    DnsRecords::default()
        .naptr("carrier.test", 20, 10, "SIP+D2T", "_sip._tcp.carrier.test")
        .naptr("carrier.test", 10, 10, "SIP+D2U", "_sip._udp.carrier.test")
        .srv("_sip._udp.carrier.test", "b.carrier.test", b_port, 20, 0)
        .srv("_sip._udp.carrier.test", "a.carrier.test", a_port, 10, 50)
        .srv("_sip._tcp.carrier.test", "c.carrier.test", c_port, 10, 0)
        .a("a.carrier.test", "127.0.0.1")
        .a("b.carrier.test", "127.0.0.1")
        .a("c.carrier.test", "127.0.0.1")
}

/// Dials `target` and waits for the one terminal notification: `status`, `reason_code`.
/// Returns the conversation ID.
async fn dial_to_end(f: &Flow, target: &str, status: &str, reason_code: &str) -> String {
    let id = f.dial(target, json!({})).await;
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["status"], status, "{term:#}");
    assert_eq!(term["reasonCode"], reason_code, "{term:#}");
    id
}

/// A flow whose trunk is the domain `address`, resolved through `dns` (with more `dns:` keys
/// `dns_extra`, e.g. ", timeout_ms: 3000"); relay RTP `ports.0..=ports.0 + 99`, the SIPp bot
/// on `ports.1`.
async fn flow_resolving(dns: &Dnsmasq, address: &str, ports: (u16, u16), dns_extra: &str) -> Flow {
    let (rtp, bot_port) = ports;
    let setup = FlowSetup {
        rtp: (rtp, rtp + 99),
        bot_port,
        trunk: Trunk {
            address: address.into(),
            ..Default::default()
        },
    };
    let server = format!("  dns: {{ servers: [\"{}\"]{dns_extra} }}\n", dns.server());
    start_flow_with_server(setup, &server).await
}

#[tokio::test]
async fn naptr_then_srv_by_priority_then_addresses() {
    // 1. dnsmasq with NAPTR → SRV → A for carrier.test.
    let dns = Dnsmasq::start(carrier_records(5001, 5002, 5003))
        .await
        .expect("dnsmasq starts (scripts/install-peers)");
    let r = resolver(&dns);
    // 2. No port, no transport: NAPTR order (UDP, then TCP), SRV priorities within UDP.
    let t = resolve(&r, "carrier.test", Transport::Udp, true).await;
    assert_eq!(
        summary(&t),
        vec![
            (Transport::Udp, 5001, Found::Naptr),
            (Transport::Udp, 5002, Found::Naptr),
            (Transport::Tcp, 5003, Found::Naptr),
        ]
    );
    assert_eq!(t[0].name, "a.carrier.test");
    assert_eq!(t[0].srv, Some((10, 50)));
    assert_eq!(t[0].addr.ip().to_string(), "127.0.0.1");
    // 3. Transport configured (tcp): no NAPTR, the SRV of that transport only.
    let before = dns.queries().len();
    let t = resolve(&r, "carrier.test", Transport::Tcp, false).await;
    assert_eq!(summary(&t), vec![(Transport::Tcp, 5003, Found::Srv)]);
    let asked: Vec<String> = dns.queries()[before..]
        .iter()
        .map(|q| q.0.clone())
        .collect();
    assert!(!asked.contains(&"NAPTR".to_owned()), "{asked:?}");
    // 4. An explicit port: A/AAAA only, on that port (no NAPTR, no SRV asked).
    let before = dns.queries().len();
    let t = resolve(&r, "b.carrier.test:5999", Transport::Udp, true).await;
    assert_eq!(summary(&t), vec![(Transport::Udp, 5999, Found::Address)]);
    let asked = dns.queries()[before..].to_vec();
    assert!(
        asked.iter().all(|(ty, _)| ty == "A" || ty == "AAAA"),
        "{asked:?}"
    );
    // 5. A name with neither NAPTR nor SRV: its own address on the default port.
    let t = resolve(&r, "a.carrier.test", Transport::Tls, false).await;
    assert_eq!(summary(&t), vec![(Transport::Tls, 5061, Found::Address)]);
}

#[tokio::test]
async fn nxdomain_and_a_silent_server_are_clear_errors() {
    // 1. dnsmasq answers NXDOMAIN for names under test. it does not serve.
    let dns = Dnsmasq::start(DnsRecords::default()).await.unwrap();
    let err = resolver(&dns)
        .resolve(&host("nx.carrier.test", Transport::Udp, true))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DnsError::NxDomain {
            name: "nx.carrier.test".into()
        }
    );
    assert!(err.to_string().contains("NXDOMAIN"), "{err}");
    // 2. A server that never answers: the resolution ends at the configured bound.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = TrunkResolver::new(&DnsSettings {
        servers: vec![silent.local_addr().unwrap()],
        timeout: Duration::from_millis(300),
    });
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        r.resolve(&host("carrier.test", Transport::Udp, true)),
    )
    .await
    .expect("bounded by server.dns.timeout_ms")
    .unwrap_err();
    assert!(
        matches!(err, DnsError::Timeout { .. } | DnsError::Lookup { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn answers_are_kept_for_their_ttl() {
    // 1. Records with a one-hour TTL; resolved once.
    let dns = Dnsmasq::start(carrier_records(5001, 5002, 5003).ttl(3600))
        .await
        .unwrap();
    let r = resolver(&dns);
    let h = host("carrier.test", Transport::Udp, true);
    let first = r.resolve(&h).await.unwrap();
    // 2. The server goes away: the same resolver still answers from its cache.
    dns.stop().await;
    let again = r.resolve(&h).await.unwrap();
    assert_eq!(summary(&again), summary(&first));
    // 3. Records with TTL 0 are not kept: once the server is gone, resolving fails (bounded).
    let dns = Dnsmasq::start(carrier_records(5001, 5002, 5003).ttl(0))
        .await
        .unwrap();
    let r = TrunkResolver::new(&DnsSettings {
        servers: vec![dns.addr],
        timeout: Duration::from_millis(500),
    });
    r.resolve(&h).await.unwrap();
    dns.stop().await;
    assert!(r.resolve(&h).await.is_err());
}

#[tokio::test]
async fn call_fails_over_from_a_503_target_to_the_next_srv_target() {
    // 1. DNS: carrier.test → NAPTR → _sip._udp: a (priority 10) answers 503, b (priority 20)
    //    answers the call; the TCP target (priority via NAPTR order 20) is never needed.
    let dns = Dnsmasq::start(carrier_records(18600, 18601, 18639))
        .await
        .unwrap();
    let first = uas("flow_carrier_503.xml", 18600, 40);
    let second = uas("flow_carrier_answer_bye.xml", 18601, 40);
    let botp = uas("flow_bot_answer.xml", 18602, 40);
    let f = flow_resolving(&dns, "carrier.test", (33600, 18602), ", timeout_ms: 3000").await;
    // 2. Dial. 3. Answered through the second target; the person hangs up.
    let id = dial_to_end(&f, "+15551230101", "completed", "client-disconnected").await;
    // 4. The first target saw one INVITE and answered 503; the second carried the call.
    let answer_bye = ["<INVITE", ">180", ">200", "<ACK", ">BYE", "<200"];
    saw_exactly(&first, "first target", &["<INVITE", ">100", ">503", "<ACK"]).await;
    let log2 = saw_exactly(&second, "second target", &answer_bye).await;
    // 5. The INVITEs are addressed to the trunk's domain, not to the target's address.
    let invite = &sip_messages(&log2)[0].1;
    assert!(
        invite.contains("INVITE sip:+15551230101@carrier.test"),
        "{invite}"
    );
    passed(&botp, "bot").await;
    // 6. The resolver asked NAPTR, then the UDP SRV name.
    let q: Vec<(String, String)> = dns
        .queries()
        .into_iter()
        .filter(|(_, name)| name != "ready.test")
        .collect();
    assert_eq!(
        q[0],
        ("NAPTR".to_owned(), "carrier.test".to_owned()),
        "{q:?}"
    );
    assert!(
        q.contains(&("SRV".to_owned(), "_sip._udp.carrier.test".to_owned())),
        "{q:?}"
    );
    let rec = f.settled(&id).await;
    assert_eq!(rec["status"], "completed", "{rec:#}");
    f.stop().await;
}

#[tokio::test]
async fn a_trunk_that_does_not_resolve_fails_the_call_clearly() {
    // 1. The trunk's domain does not exist; the bot must never be called.
    let dns = Dnsmasq::start(DnsRecords::default()).await.unwrap();
    let botp = uas("flow_bot_answer.xml", 18612, 10);
    let f = flow_resolving(&dns, "nx.carrier.test", (33700, 18612), "").await;
    // 2. Dial. 3. Failed with reasonCode error, the reason naming the name and NXDOMAIN.
    let id = dial_to_end(&f, "+15551230102", "failed", "error").await;
    let rec = f.settled(&id).await;
    let reason = rec["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("carrier unreachable")
            && reason.contains("nx.carrier.test")
            && reason.contains("NXDOMAIN"),
        "{rec:#}"
    );
    // 4. Nobody was called.
    assert!(botp.messages().is_empty(), "{}", botp.messages());
    f.stop().await;
}

#[tokio::test]
async fn check_prints_what_domain_trunks_resolve_to() {
    // 1. A configuration with a NAPTR/SRV trunk, a trunk by IP, and one that does not resolve.
    let dns = Dnsmasq::start(carrier_records(5001, 5002, 5003))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dns.yaml");
    std::fs::write(
        &p,
        format!(
            "server:\n  sip:\n    listen: [ {{ transport: udp, address: \"127.0.0.1:5060\" }} ]\n  http: {{ listen: \"127.0.0.1:8443\", plain_http: true }}\n  dns: {{ servers: [\"{}\"], timeout_ms: 2000 }}\n\
             sip_connections:\n  - {{ id: dom, name: Dom, address: carrier.test }}\n  - {{ id: ip, name: Ip, address: \"127.0.0.1:5070\" }}\n  - {{ id: nx, name: Nx, address: nx.carrier.test, transport: udp }}\n",
            dns.server()
        ),
    )
    .unwrap();
    // 2. `dialgate check` (bounded by the DNS timeout) succeeds: DNS is not configuration.
    let out = Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .arg("check")
        .arg(&p)
        .output()
        .unwrap();
    let text = stdout_of_success(&out);
    // 3. The domain trunk's targets in order, with priority, weight, port and transport.
    let expected = [
        "DNS: trunk dom (Dom) address carrier.test resolves to:",
        "  1. udp 127.0.0.1:5001 (a.carrier.test, NAPTR, SRV priority 10 weight 50)",
        "  2. udp 127.0.0.1:5002 (b.carrier.test, NAPTR, SRV priority 20 weight 0)",
        "  3. tcp 127.0.0.1:5003 (c.carrier.test, NAPTR, SRV priority 10 weight 0)",
    ];
    for line in expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    // 4. The trunk by IP is not listed; the one that does not resolve says why.
    assert!(!text.contains("trunk ip"), "{text}");
    assert!(
        text.lines().any(
            |l| l.starts_with("WARNING: trunk nx (Nx) address nx.carrier.test")
                && l.contains("NXDOMAIN")
        ),
        "{text}"
    );
}
