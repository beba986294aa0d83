//! The cap on accepted SIP TCP/TLS connections (`server.sip.max_connections`), over real
//! connections on loopback: with a cap of N the N+1th is closed at accept while the first N
//! stay open and answered; a freed slot takes a new connection; TLS connections count the same.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dialgate::overflow::{self, Queue};
use dialgate::sip::tls_client::{TrunkTlsSettings, client_config};
use dialgate::sip::{SipEndpoint, SipSettings, StreamLimits, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

async fn endpoint(transport: Transport, cap: usize) -> (SipEndpoint, SocketAddr) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("dialgate=debug,rsipstack=info")
        .with_test_writer()
        .try_init();
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/certs");
    let ep = SipEndpoint::start_limited(
        SipSettings {
            listen: vec![
                (Transport::Udp, "127.0.0.1:0".parse().unwrap()),
                (transport, "127.0.0.1:0".parse().unwrap()),
            ],
            tls: (transport == Transport::Tls)
                .then(|| (format!("{certs}/dev.crt"), format!("{certs}/dev.key"))),
            public_address: "127.0.0.1".parse().unwrap(),
            public_address_v6: None,
            tls_ca: None,
            user_agent: "dialgate-test".into(),
            t1: None,
        },
        StreamLimits {
            max_connections: cap,
        },
    )
    .await
    .unwrap();
    let addr = ep.local_addr(transport).expect("stream listener bound");
    (ep, addr)
}

fn options(transport: &str, n: u32, from: SocketAddr) -> String {
    format!(
        "OPTIONS sip:dialgate@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {from};branch=z9hG4bK-cap{n}\r\n\
Max-Forwards: 70\r\nFrom: <sip:peer@127.0.0.1>;tag=f{n}\r\nTo: <sip:dialgate@127.0.0.1>\r\n\
Call-ID: cap-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends an OPTIONS on `s` and returns the final status code (bounded wait: 5 s).
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, msg: &str) -> u16 {
    s.write_all(msg.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "connection closed before the answer");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        for head in text.split("\r\n\r\n") {
            if let Some(code) = head
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|c| c.parse::<u16>().ok())
                && code >= 200
            {
                return code;
            }
        }
    }
}

/// True when the peer closed `s` (EOF or reset) within 5 s without sending anything.
async fn closed<S: AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// Waits (bounded: 5 s) until the endpoint counts `n` open accepted connections.
async fn open_becomes(ep: &SipEndpoint, n: usize) {
    for _ in 0..500 {
        if ep.stream_connections() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("open connections: {} (want {n})", ep.stream_connections());
}

async fn tcp(addr: SocketAddr) -> (TcpStream, SocketAddr) {
    let s = TcpStream::connect(addr).await.expect("connect");
    let local = s.local_addr().unwrap();
    (s, local)
}

#[tokio::test]
async fn over_the_cap_a_tcp_connection_is_closed_and_the_others_stay_served() {
    // 1. A TCP listener capped at 2.
    let (ep, addr) = endpoint(Transport::Tcp, 2).await;
    // 2. Two connections, each answered 200 to an OPTIONS.
    let (mut a, a_from) = tcp(addr).await;
    let (mut b, b_from) = tcp(addr).await;
    assert_eq!(ask(&mut a, &options("TCP", 1, a_from)).await, 200);
    assert_eq!(ask(&mut b, &options("TCP", 2, b_from)).await, 200);
    open_becomes(&ep, 2).await;
    // 3. A third and a fourth: closed at accept, counted.
    let refused = overflow::count(Queue::SipConnections);
    let (mut c, _) = tcp(addr).await;
    let (mut d, _) = tcp(addr).await;
    assert!(
        closed(&mut c).await,
        "the connection over the cap is closed"
    );
    assert!(
        closed(&mut d).await,
        "the connection over the cap is closed"
    );
    assert!(overflow::count(Queue::SipConnections) >= refused + 2);
    // 4. The first two stay open and answered.
    assert_eq!(ask(&mut a, &options("TCP", 3, a_from)).await, 200);
    assert_eq!(ask(&mut b, &options("TCP", 4, b_from)).await, 200);
    assert_eq!(ep.stream_connections(), 2);
    // 5. One closes: its slot is freed and a new connection is served.
    drop(a);
    open_becomes(&ep, 1).await;
    let (mut e, e_from) = tcp(addr).await;
    assert_eq!(ask(&mut e, &options("TCP", 5, e_from)).await, 200);
    open_becomes(&ep, 2).await;
    ep.shutdown();
}

#[tokio::test]
async fn tls_connections_are_served_after_their_handshake_and_capped_the_same() {
    // 1. A TLS listener capped at 1; a client that does not check the certificate.
    let (ep, addr) = endpoint(Transport::Tls, 1).await;
    let config = client_config(&TrunkTlsSettings {
        verify: false,
        ..Default::default()
    })
    .expect("client config");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    // 2. One TLS connection: handshake, then OPTIONS answered 200.
    let (tcp_a, a_from) = tcp(addr).await;
    let mut a = connector
        .connect(name.clone(), tcp_a)
        .await
        .expect("TLS handshake");
    assert_eq!(ask(&mut a, &options("TLS", 1, a_from)).await, 200);
    open_becomes(&ep, 1).await;
    // 3. A second connection is closed at accept (before any handshake).
    let (mut b, _) = tcp(addr).await;
    assert!(closed(&mut b).await);
    // 4. The first is still served.
    assert_eq!(ask(&mut a, &options("TLS", 2, a_from)).await, 200);
    ep.shutdown();
}
