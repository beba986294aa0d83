//! Endpoint policy for requests nobody asked for, over a raw UDP socket, plus malformed input.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::legs::{self, endpoint};
use dialgate::sip::{SipEndpoint, SipSettings, Transport};
use tokio::net::UdpSocket;

fn request(method: &str, to_tag: bool, n: u32, port: u16) -> String {
    let tag = if to_tag { ";tag=remote1" } else { "" };
    format!(
        "{method} sip:dialgate@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-t{n}\r\n\
Max-Forwards: 70\r\nFrom: <sip:scanner@127.0.0.1>;tag=f{n}\r\nTo: <sip:dialgate@127.0.0.1>{tag}\r\n\
Call-ID: test-{n}@127.0.0.1\r\nCSeq: 1 {method}\r\nContact: <sip:scanner@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Send and return the status code of the first final response (bounded wait: 5 s).
async fn status_of(sock: &UdpSocket, ep: SocketAddr, msg: &str) -> u16 {
    sock.send_to(msg.as_bytes(), ep).await.unwrap();
    let mut buf = vec![0u8; 8192];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        let code: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        if code >= 200 {
            return code;
        }
    }
}

#[tokio::test]
async fn out_of_dialog_policy() {
    // 1. endpoint + raw client socket
    let ep = endpoint(None).await;
    let addr = ep.local_addr(Transport::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:15100").await.unwrap();
    // 2. OPTIONS keep-alive → 200; 3. INVITE from outside → 403 (never an open relay);
    // 4. BYE / INFO for a dialog we do not have → 481; 5. an out-of-dialog REGISTER is not
    //    for us → 405
    for (cseq, (method, in_dialog, want)) in [
        ("OPTIONS", false, 200),
        ("INVITE", false, 403),
        ("BYE", true, 481),
        ("INFO", true, 481),
        ("REGISTER", false, 405),
    ]
    .into_iter()
    .enumerate()
    {
        let req = request(method, in_dialog, cseq as u32 + 1, 15100);
        assert_eq!(status_of(&sock, addr, &req).await, want, "{method}");
    }
    // 6. nothing was created
    assert_eq!(ep.dialog_count(), 0);
    ep.shutdown();
}

/// RFC 4475-style torture messages (abridged) and random garbage.
fn torture() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        // 3.1.2.1 extraneous header field separators / bad Content-Length
        b"INVITE sip:user@example.com SIP/2.0\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=134161461246\r\nMax-Forwards: 7\r\nCall-ID: badinv01.0ha0isndaksdjasdf3234nas\r\nCSeq: 8 INVITE\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\nContact: \"Joe\" <sip:joe@example.org>;;;;\r\nContent-Length: 152\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n".to_vec(),
        // 3.1.2.2 content length larger than message
        b"INVITE sip:user@example.com SIP/2.0\r\nMax-Forwards: 80\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=93942939o2\r\nContact: <sip:caller@hungry.example.net>\r\nCall-ID: clerr.0ha0isndaksdjweiafasdk3\r\nCSeq: 8 INVITE\r\nVia: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\r\nContent-Type: application/sdp\r\nContent-Length: 9999\r\n\r\nv=0\r\n".to_vec(),
        // 3.1.2.3 negative Content-Length
        b"INVITE sip:user@example.com SIP/2.0\r\nMax-Forwards: 254\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=32394234\r\nCall-ID: ncl.0ha0isndaksdj2193423r542w35\r\nCSeq: 0 INVITE\r\nVia: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\r\nContent-Type: application/sdp\r\nContent-Length: -999\r\n\r\n".to_vec(),
        // 3.1.2.4 request scalar fields with overlarge values
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\r\nTo: <sip:user@example.com>\r\nFrom: <sip:user@example.com>;tag=239232jh3\r\nCSeq: 36893488147419103232 REGISTER\r\nCall-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\r\nMax-Forwards: 300\r\nExpires: 1293842308429384239482340982394823\r\nContact: <sip:user@host129.example.com>;expires=280297596632815\r\nContent-Length: 0\r\n\r\n".to_vec(),
        // 3.1.2.6 unterminated quoted string in display name
        b"INVITE sip:user@example.com SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: \"Bob <sip:bob@example.com>;tag=37GkEhwl6\r\nMax-Forwards: 72\r\nCall-ID: ltgtruri.1@192.0.2.5\r\nCSeq: 17587 INVITE\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKkdjuw\r\nContent-Length: 0\r\n\r\n".to_vec(),
        // 3.1.2.9 multiple SIP request in a single message / escaped headers in URI
        b"INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1\r\nContent-Length: 0\r\n\r\nINVITE sip:a SIP/2.0\r\n\r\n".to_vec(),
        // 3.1.2.11 missing required headers
        b"INVITE sip:user@example.com SIP/2.0\r\nCSeq: 193942 INVITE\r\nVia: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\r\nContent-Length: 0\r\n\r\n".to_vec(),
        // 3.1.2.16 unknown protocol version
        b"OPTIONS sip:t.watson@example.org SIP/7.0\r\nVia: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\nMax-Forwards: 70\r\nFrom: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\r\nTo: T. Watson <sip:t.watson@example.org>\r\nCall-ID: badvers.31417@c.example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_vec(),
        // 3.1.2.17 start line and CSeq method mismatch
        b"INVITE sip:user@example.com SIP/2.0\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=34525\r\nMax-Forwards: 6\r\nCall-ID: mismatch01.dj0234sxdfl3\r\nCSeq: 8 OPTIONS\r\nVia: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\r\nContent-Length: 0\r\n\r\n".to_vec(),
        // a response nobody asked for, binary junk, empty datagram, keep-alive CRLF
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnone\r\nCSeq: 1 INVITE\r\nCall-ID: x\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nContent-Length: 0\r\n\r\n".to_vec(),
        vec![0xff, 0x00, 0xfe, 0x80, 0x0d, 0x0a],
        vec![],
        b"\r\n\r\n".to_vec(),
        vec![b'A'; 9000],
    ];
    // A deterministic byte-mutation of a valid OPTIONS, 200 variants.
    let base = request("OPTIONS", false, 99, 15102).into_bytes();
    let mut x: u32 = 4475;
    for _ in 0..200 {
        let mut m = base.clone();
        for _ in 0..4 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let i = (x as usize >> 8) % m.len();
            m[i] = (x >> 16) as u8;
        }
        v.push(m);
    }
    v
}

#[tokio::test]
async fn torture_messages_do_not_kill_the_endpoint() {
    // 1. endpoint + attacker socket
    let ep = endpoint(None).await;
    let addr = ep.local_addr(Transport::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:15102").await.unwrap();
    // 2. fire every torture datagram
    for m in torture() {
        sock.send_to(&m, addr).await.unwrap();
    }
    // 3. drain whatever came back (bounded), then the endpoint still answers OPTIONS
    let mut buf = vec![0u8; 8192];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {}
    let probe = UdpSocket::bind("127.0.0.1:15104").await.unwrap();
    assert_eq!(
        status_of(&probe, addr, &request("OPTIONS", false, 7, 15104)).await,
        200
    );
    ep.shutdown();
}

#[tokio::test]
async fn tls_listener_answers_options() {
    // 1. endpoint with UDP + TLS listeners and a self-signed test certificate
    let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sip/");
    let ep = legs::start(SipSettings {
        tls: Some((format!("{fx}dev.crt"), format!("{fx}dev.key"))),
        ..legs::settings(&[
            (Transport::Udp, "127.0.0.1:0"),
            (Transport::Tls, "127.0.0.1:15110"),
        ])
    })
    .await;
    // 2. an independent TLS client (openssl s_client) sends OPTIONS over TLS
    let reply = tokio::task::spawn_blocking(|| {
        use std::io::{BufRead, BufReader, Write};
        use std::process::{Command, Stdio};
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                "127.0.0.1:15110",
                "-quiet",
                "-ign_eof",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let msg = request("OPTIONS", false, 11, 15112).replace("SIP/2.0/UDP", "SIP/2.0/TLS");
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(msg.as_bytes())
            .unwrap();
        let mut first = String::new();
        // bounded: the endpoint answers or closes; kill afterwards either way
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let _ = out.read_line(&mut first);
        let _ = child.kill();
        let _ = child.wait();
        first
    });
    let first = tokio::time::timeout(Duration::from_secs(10), reply)
        .await
        .unwrap()
        .unwrap();
    // 3. the status line is 200
    assert!(first.starts_with("SIP/2.0 200"), "got {first:?}");
    ep.shutdown();
}

#[tokio::test]
async fn tls_without_certificate_is_a_config_error() {
    let r = SipEndpoint::start(legs::settings(&[(Transport::Tls, "127.0.0.1:15114")])).await;
    let err = r.err().expect("must fail");
    assert!(err.is_config_error(), "{err}");
}

#[tokio::test]
async fn sips_invite_reaches_a_tls_peer_and_its_403_is_reported() {
    use dialgate::sip::{FailureKind, LegEvent, OutboundCall};
    // 1. peer: a second dialgate endpoint on TLS (refuses INVITEs with 403)
    let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sip/");
    let settings = |tls: &str| SipSettings {
        tls: Some((format!("{fx}dev.crt"), format!("{fx}dev.key"))),
        tls_ca: Some(format!("{fx}ca.crt")),
        t1: Some(Duration::from_millis(50)),
        ..legs::settings(&[(Transport::Udp, "127.0.0.1:0"), (Transport::Tls, tls)])
    };
    let peer = legs::start(settings("127.0.0.1:15120")).await;
    let ep = legs::start(settings("127.0.0.1:15122")).await;
    // 2. INVITE sips: over TLS
    let (_leg, mut rx) = ep
        .place_call(OutboundCall {
            request_uri: "sips:bot@127.0.0.1:15120".into(),
            from_user: "dialgate".into(),
            from_host: "127.0.0.1".into(),
            sdp_offer: "v=0\r\n".into(),
            conversation_id: "tls".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    // 3. the peer's 403 came back over TLS
    match ev {
        LegEvent::Failed { code, kind, .. } => {
            assert_eq!((code, kind), (Some(403), FailureKind::Response))
        }
        ev => panic!("expected 403, got {ev:?}"),
    }
    peer.shutdown();
    ep.shutdown();
}
