//! Numbers as dialers export them: a target without `+` is dialled in the
//! trunk's `default_country` (SIPp plays the carrier and shows the INVITE).
//! Ports: SIP 16300-16301, relay RTP 27600-27799.

use crate::common;
use common::peers::Sipp;
use common::sippflows::*;
use serde_json::json;

/// A SIPp carrier answering 486 on SIP port `sip` and a flow calling it (the bot on `sip + 1`,
/// relay RTP `rtp`..`rtp + 99`), the trunk's `default_country` as given.
async fn busy_flow(sip: u16, rtp: u16, default_country: Option<u16>) -> (Sipp, Flow) {
    let carrier = uas("flow_carrier_486.xml", sip, 40);
    let f = start_flow(FlowSetup {
        rtp: (rtp, rtp + 99),
        bot_port: sip + 1,
        trunk: Trunk {
            address: format!("127.0.0.1:{sip}"),
            default_country,
            ..Default::default()
        },
    })
    .await;
    (carrier, f)
}

#[tokio::test]
async fn a_number_without_plus_is_dialled_in_the_trunks_default_country() {
    // 1. The carrier answers 486; its trunk says `default_country: 1`.
    let (carrier, f) = busy_flow(16300, 27600, Some(1)).await;
    // 2. The dialer sends the number as its spreadsheet has it.
    let id = f.dial("15550100", json!({})).await;
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["reasonCode"], "busy");
    // 3. The carrier was asked for +15550100.
    let (code, log) = finish(&carrier).await;
    assert_eq!(code, 0, "carrier scenario: {log}");
    let msgs = sip_messages(&log);
    let invite = msgs
        .iter()
        .find(|m| m.0 == "<INVITE")
        .expect("the carrier got an INVITE");
    let request_line = invite.1.trim_start().lines().next().unwrap_or("");
    assert!(
        request_line.starts_with("INVITE sip:+15550100@"),
        "{request_line}"
    );
    // 4. The record keeps both: what was sent and what was dialled.
    let rec = f.settled(&id).await;
    assert_eq!(rec["target"], "tel:+15550100", "{rec:#}");
    assert_eq!(rec["request"]["targetAsSent"], "15550100", "{rec:#}");
    f.stop().await;
}

#[tokio::test]
async fn the_largest_request_a_dialer_may_send_keeps_the_invite_within_udp() {
    // 1. The carrier answers 486.
    let (carrier, f) = busy_flow(16302, 27700, None).await;
    // 2. Every dialer-controlled field at its limit: 10 headers of 256 bytes in all,
    //    a 64-character display name, a 32-character caller.
    let headers: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|i| (format!("X-Field-{i}"), json!("v".repeat(25 - 9))))
        .collect();
    let id = f
        .dial(
            "+15551230099",
            json!({
                "headers": headers,
                "callerDisplayName": "D".repeat(64),
                "caller": "1".repeat(32),
            }),
        )
        .await;
    one_terminal(&f.sink, &id).await;
    // 3. The INVITE the carrier got fits the 1,300 bytes of RFC 3261 §18.1.1.
    let (code, log) = finish(&carrier).await;
    assert_eq!(code, 0, "carrier scenario: {log}");
    let msgs = sip_messages(&log);
    let invite = msgs.iter().find(|m| m.0 == "<INVITE").expect("an INVITE");
    let size = invite.1.trim().len();
    assert!(invite.1.contains("X-Field-9"), "{}", invite.1);
    assert!(size < 1300, "INVITE of {size} bytes:\n{}", invite.1);
    eprintln!("largest dialer-controlled INVITE: {size} bytes (as SIPp traced it)");
    f.stop().await;
}
