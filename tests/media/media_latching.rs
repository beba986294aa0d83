//! The relay cannot be hijacked: RTP from a third party reaching a relay port
//! is dropped and counted, whatever its rate, and the call's own audio goes on.
//! Real UDP sockets on loopback; each test has its own port range (27600-27907).

use std::net::SocketAddr;

use dialgate::media::{AudioCodec, LatchMode, Leg, global_metrics};

use crate::common::udp_peer;
use udp_peer::{Peer, RelayCall, engine, remote};

fn rtp(seq: u16, ssrc: u32, fill: u8) -> Vec<u8> {
    let mut v = vec![0x80, 0];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&(160 * seq as u32).to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(&[fill; 160]);
    v
}

type Call = RelayCall;

/// `from` sends packets `seqs` of SSRC `ssrc`, filled with `fill`, to `to`.
fn burst(from: &Peer, to: SocketAddr, seqs: std::ops::Range<u16>, ssrc: u32, fill: u8) {
    for seq in seqs {
        from.send(to, &rtp(seq, ssrc, fill));
    }
}

impl RelayCall {
    /// A session whose carrier leg uses `mode`; the peers' SDP addresses are
    /// their sockets (or `carrier_sdp` for a carrier behind NAT).
    fn latching(port_min: u16, mode: LatchMode, carrier_sdp: Option<SocketAddr>) -> Call {
        let c = RelayCall::new(engine(port_min, 4), "latching");
        c.session.set_latching(Leg::Carrier, mode).unwrap();
        let sdp = carrier_sdp.unwrap_or(c.carrier.addr());
        let pcmu = |addr| remote(addr, AudioCodec::PCMU, None);
        c.session.set_remote(Leg::Carrier, pcmu(sdp)).unwrap();
        c.session.set_remote(Leg::Bot, pcmu(c.bot.addr())).unwrap();
        c
    }
    /// One carrier packet and one bot packet, each checked at the other side.
    fn exchange(&self, seq: u16) {
        self.carrier.send(self.carrier_side(), &rtp(seq, 0xca, 1));
        assert_eq!(
            self.bot.recv()[12..],
            [1; 160],
            "carrier audio reaches the bot"
        );
        self.bot.send(self.bot_side(), &rtp(seq, 0xb0, 2));
        assert_eq!(
            self.carrier.recv()[12..],
            [2; 160],
            "bot audio reaches the carrier"
        );
    }
}

#[tokio::test]
async fn foreign_rtp_mid_call_is_dropped_and_the_call_audio_continues() {
    // 1. a call in the default mode (learn) with audio flowing both ways
    let c = Call::latching(27600, LatchMode::default(), None);
    for seq in 0..10 {
        c.exchange(seq);
    }
    let before = global_metrics().foreign_source;
    // 2. an attacker who found the carrier-side relay port sends 50 packets of one SSRC
    //    (3 were enough to take the leg over before), interleaved with the real stream
    let attacker = Peer::new();
    for i in 0..50u16 {
        attacker.send(c.carrier_side(), &rtp(5000 + i, 0xbad, 9));
        if i % 10 == 0 {
            c.exchange(10 + i);
        }
    }
    // 3. the bot got none of it; the bot's audio still goes to the carrier, not to the attacker
    assert!(c.bot.drain().iter().all(|p| p[12..] != [9; 160]));
    c.exchange(100);
    assert!(attacker.drain().is_empty(), "the attacker receives nothing");
    // 4. the drops are on the call's counters and in the process metrics
    let st = c.session.stats().carrier;
    assert_eq!(st.dropped_foreign_source, 50);
    assert_eq!(st.source_changes, 0);
    assert!(global_metrics().foreign_source >= before + 50);
}

#[tokio::test]
async fn strict_never_leaves_the_sdp_address() {
    // 1. strict, and the carrier's real source differs from its SDP (as behind NAT)
    let sdp = Peer::new();
    let c = Call::latching(27700, LatchMode::Strict, Some(sdp.addr()));
    // 2. its packets are dropped however many come
    burst(&c.carrier, c.carrier_side(), 0..20, 0xca, 1);
    assert!(c.bot.drain().is_empty());
    assert_eq!(c.session.stats().carrier.dropped_foreign_source, 20);
    // 3. the bot's audio goes to the SDP address only
    c.bot.send(c.bot_side(), &rtp(0, 0xb0, 2));
    assert_eq!(sdp.recv()[12..], [2; 160]);
}

#[tokio::test]
async fn learn_follows_a_peer_behind_nat_at_start_and_after_a_reinvite_only() {
    // 1. learn; the carrier sends from another address than its SDP one: latched after
    //    probation (3 packets), then its audio flows
    let sdp = Peer::new();
    let c = Call::latching(27800, LatchMode::Learn, Some(sdp.addr()));
    burst(&c.carrier, c.carrier_side(), 0..3, 0xca, 1);
    assert_eq!(c.bot.recv()[12..], [1; 160]);
    c.exchange(3);
    // 2. mid-stream, a new source is refused
    let moved = Peer::new();
    burst(&moved, c.carrier_side(), 0..10, 0xcb, 3);
    assert!(c.bot.drain().is_empty());
    // 3. after a re-INVITE (the peer signalled; same SDP address) the new source may latch
    c.session
        .set_remote(Leg::Carrier, remote(sdp.addr(), AudioCodec::PCMU, None))
        .unwrap();
    burst(&moved, c.carrier_side(), 10..13, 0xcb, 3);
    assert_eq!(c.bot.recv()[12..], [3; 160]);
    c.bot.send(c.bot_side(), &rtp(4, 0xb0, 2));
    assert_eq!(moved.recv()[12..], [2; 160]);
}

#[tokio::test]
async fn off_keeps_the_old_behaviour_for_trunks_that_need_it() {
    // 1. off: a new source takes the leg over mid-stream after probation
    let c = Call::latching(27900, LatchMode::Off, None);
    c.exchange(0);
    let moved = Peer::new();
    burst(&moved, c.carrier_side(), 0..3, 0xcb, 3);
    assert_eq!(c.bot.recv()[12..], [3; 160]);
    assert_eq!(c.session.stats().carrier.source_changes, 1);
}
