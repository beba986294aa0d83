//! Notifications reach a dialer's URL only when its address is permitted,
//! checked when the request is made (not only when the dialout was accepted),
//! and a refused or failed delivery says no more than "unreachable".
//! Real HTTP over loopback against the test suite's notification sink.

use crate::common;
use bytes::Bytes;
use common::http_peers::NotifySink;
use dialgate::webhook::client::{HttpClient, UNREACHABLE};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn loopback_is_refused_unless_allowed_and_errors_say_only_unreachable() {
    // 1. a dialer sink on 127.0.0.1
    let sink = NotifySink::start().await.unwrap();
    let body = Bytes::from_static(br#"{"status":"answered"}"#);
    // 2. a client with no allowed network: refused before any connection
    let strict = HttpClient::new(Duration::from_secs(5), Duration::from_secs(3));
    let e = strict
        .post_notification(&sink.url(), body.clone(), &[])
        .await
        .unwrap_err();
    assert_eq!(e, UNREACHABLE);
    // 3. so is loopback by name (names other than localhost are checked on the
    //    addresses they resolve to when connecting: netguard's resolver test)
    let by_name = sink.url().replace("127.0.0.1", "localhost");
    let e = strict
        .post_notification(&by_name, body.clone(), &[])
        .await
        .unwrap_err();
    assert_eq!(e, UNREACHABLE);
    assert!(sink.requests().is_empty(), "nothing reached the sink");
    // 4. with 127.0.0.0/8 allowed, the same notification is delivered
    let open = HttpClient::new(Duration::from_secs(5), Duration::from_secs(3))
        .with_notify_allow(Arc::new(|| vec!["127.0.0.0/8".parse().unwrap()]));
    let a = open
        .post_notification(&sink.url(), body.clone(), &[])
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(sink.requests().len(), 1);
    // 5. a closed port: the error is the same single word, not "connection refused"
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = open
        .post_notification(&format!("http://127.0.0.1:{port}/n"), body, &[])
        .await
        .unwrap_err();
    assert_eq!(e, UNREACHABLE);
}
