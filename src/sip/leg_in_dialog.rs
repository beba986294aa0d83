//! A confirmed leg's own in-dialog requests: REFER (and reading its NOTIFYs) and INFO.

use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCodeKind};
use tracing::{info, warn};

use super::LegEvent;

/// Sends REFER on the dialog; its final response (or why none came) as a leg event.
pub(super) async fn refer(
    dialog: &InviteDialog,
    refer_to: &str,
    referred_by: &str,
    headers: Vec<(String, String)>,
) -> LegEvent {
    let mut extra: Vec<Header> = headers
        .into_iter()
        .map(|(n, v)| Header::Other(n, v))
        .collect();
    extra.push(Header::ReferredBy(format!("<{referred_by}>").into()));
    info!(%refer_to, "sending REFER");
    match dialog
        .refer(format!("<{refer_to}>"), Some(extra), None)
        .await
    {
        Ok(Some(resp)) => LegEvent::ReferAnswered {
            code: Some(u16::from(resp.status_code.clone())),
            reason: resp.status_code.to_string(),
        },
        Ok(None) => LegEvent::ReferAnswered {
            code: None,
            reason: "no response to the REFER (the dialog is not confirmed)".into(),
        },
        Err(e) => LegEvent::ReferAnswered {
            code: None,
            reason: format!("the REFER failed: {e}"),
        },
    }
}

/// The status code of a REFER's NOTIFY (`Event: refer`, body `SIP/2.0 200 OK`), if it is one.
pub(super) fn refer_notify_code(req: &rsipstack::sip::Request) -> Option<u16> {
    let event = req.headers.iter().find_map(|h| match h {
        Header::Event(e) => Some(e.to_string()),
        Header::Other(n, v) if n.eq_ignore_ascii_case("event") => Some(v.clone()),
        _ => None,
    })?;
    let event = event
        .trim_start_matches("Event:")
        .trim()
        .to_ascii_lowercase();
    if !event.starts_with("refer") {
        return None;
    }
    sipfrag_code(&String::from_utf8_lossy(&req.body))
}

/// `SIP/2.0 180 Ringing` → 180.
fn sipfrag_code(body: &str) -> Option<u16> {
    let line = body.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let code: u16 = rest.split_whitespace().next()?.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}

/// Sends an in-dialog INFO without holding up the dialog's loop (its transaction may take up
/// to Timer F); the peer's answer is logged.
pub(super) fn send_info(dialog: &InviteDialog, content_type: String, body: Vec<u8>) {
    let d = dialog.clone();
    tokio::spawn(async move {
        let headers = vec![Header::ContentType(content_type.into())];
        match d.info(Some(headers), Some(body)).await {
            Ok(Some(r)) if r.status_code.kind() == StatusCodeKind::Successful => {
                info!(code = %r.status_code, "INFO answered");
            }
            Ok(Some(r)) => warn!(code = %r.status_code, "INFO refused"),
            Ok(None) => warn!("INFO not sent: the dialog is not confirmed"),
            Err(e) => warn!(error = %e, "INFO failed"),
        }
    });
}

#[cfg(test)]
mod refer_tests {
    use super::sipfrag_code;

    #[test]
    fn sipfrag_status_lines_are_read_and_others_refused() {
        assert_eq!(sipfrag_code("SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_code("SIP/2.0 100 Trying"), Some(100));
        assert_eq!(sipfrag_code("SIP/2.0 603 Declined\r\nFoo: bar"), Some(603));
        for bad in [
            "",
            "200 OK",
            "SIP/2.0 abc",
            "SIP/2.0 99 x",
            "HTTP/1.1 200 OK",
        ] {
            assert_eq!(sipfrag_code(bad), None, "{bad}");
        }
    }
}
