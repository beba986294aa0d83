//! `bots[].outbound.early_media_to_bot`: only a SIP bot has a leg that can be placed before the
//! answer, so the key is refused, at its position, for text and WebSocket bots (whose media side
//! starts with the answer) rather than silently doing nothing.

use super::error::ErrorKind;
use super::raw::RawBot;
use super::validate::Ctx;

/// Reports `early_media_to_bot: true` on a bot without `sip_uri`.
pub(super) fn check(ctx: &mut Ctx, src: usize, outbound_path: &str, raw: &RawBot) {
    if !raw.outbound.early_media_to_bot || raw.sip_uri.is_some() {
        return;
    }
    let kind = if raw.websocket.is_some() {
        "a WebSocket bot (its audio stream starts with the answer)"
    } else {
        "a text bot (dialgate is its voice and ears only once the person answers)"
    };
    ctx.err(
        src,
        &format!("{outbound_path}.early_media_to_bot"),
        ErrorKind::Conflict,
        format!(
            "early_media_to_bot applies to SIP bots only (`sip_uri`: their leg is placed at the \
             first 183/180 with SDP); this is {kind}: remove the key or set it to false"
        ),
    );
}

#[cfg(test)]
mod tests {
    const HEAD: &str = "server:\n  sip:\n    listen: [ { transport: udp, address: \"127.0.0.1:5060\" } ]\n  http: { plain_http: true }\nbots:\n";

    fn load(bots: &str) -> Result<super::super::Config, super::super::ConfigErrors> {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("t.yaml");
        std::fs::write(&file, format!("{HEAD}{bots}")).expect("config written");
        super::super::load(&file)
    }

    #[test]
    fn a_sip_bot_takes_the_key_and_it_defaults_to_false() {
        // 1. Set on a SIP bot, absent on another.
        let cfg = load(
            "  - id: a\n    name: A\n    sip_uri: \"sip:a@127.0.0.1\"\n    outbound: { early_media_to_bot: true }\n  - id: b\n    name: B\n    sip_uri: \"sip:b@127.0.0.1\"\n",
        )
        .expect("valid");
        // 2. Read as written, default false.
        assert!(cfg.bots[0].outbound.early_media_to_bot);
        assert!(!cfg.bots[1].outbound.early_media_to_bot);
    }

    #[test]
    fn text_and_websocket_bots_are_refused_the_key_at_its_position() {
        // 1. A text bot and a WebSocket bot with the key; a word where a flag goes on a third.
        let errs = load(
            "  - id: t\n    name: T\n    events_url: \"http://127.0.0.1:1/bot\"\n    outbound:\n      early_media_to_bot: true\n  - id: w\n    name: W\n    websocket: { url: \"ws://127.0.0.1:1/\", protocol: media-stream }\n    outbound:\n      early_media_to_bot: true\n",
        )
        .expect_err("refused");
        // 2. One error each, at the key's value, saying SIP bots only and which kind it is.
        let got: Vec<(usize, &str, &str)> = errs
            .errors()
            .iter()
            .map(|e| (e.line, e.path.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(got.len(), 2, "{errs}");
        assert_eq!(
            (got[0].0, got[0].1),
            (10, "bots[0].outbound.early_media_to_bot")
        );
        assert!(got[0].2.contains("SIP bots only"), "{errs}");
        assert!(got[0].2.contains("text bot"), "{errs}");
        assert_eq!(
            (got[1].0, got[1].1),
            (15, "bots[1].outbound.early_media_to_bot")
        );
        assert!(got[1].2.contains("WebSocket bot"), "{errs}");
        // 3. Not a flag: said in configuration words.
        let errs = load(
            "  - id: a\n    name: A\n    sip_uri: \"sip:a@127.0.0.1\"\n    outbound: { early_media_to_bot: early }\n",
        )
        .expect_err("refused");
        assert!(errs.to_string().contains("true or false"), "{errs}");
    }
}
