#!/usr/bin/env python3
"""One scriptable PJSIP user agent (pjsua2) for dialgate's integration tests.

It plays the carrier's callee or the bot (UAS, the default) or places calls itself (UAC, ``--call``).
Everything it sees is written as JSON lines to ``--log`` (stdout when absent), one object per event:

  ready         {"sip_port", "pid"}                      transport bound, ready for traffic
  calling       {"call", "uri"}                          UAC: INVITE sent
  incoming      {"call", "request_uri", "headers", "sdp", "src"}
  response      {"call", "code", "reason", "headers", "sdp"}  every response to an INVITE received
  sip           {"dir": "rx"|"tx", "start", "headers", "body"}  every SIP message (with --log-sip)
  answer        {"call", "code"}                         final/provisional answer we sent
  state         {"call", "state", "code", "reason"}      INVITE session state changes
  media         {"call", "remote_rtp", "codec"}          audio stream active
  dtmf          {"call", "digit"}
  dtmf_event    {"call", "digit", "duration", "flags", "timestamp"}
  reinvite_sent {"call"}                                 --reinvite-after-ms: re-INVITE sent
  rtp_stats     {"call", "rx_pkt", "rx_loss", "rx_dup", "rx_jitter_mean_us", "rx_jitter_max_us",
                 "media_s"}  RTP received on the audio stream, logged before a local hang-up
  play_done     {"call"}                                 --play file reached its end (not with --play-loop)
  cancelled     {"call"}                                 caller sent CANCEL while we rang
  disconnected  {"call", "code", "reason", "by": "remote"|"local", "recording"}
  error         {"message"}
  exit          {"reason"}

Design notes (see shared/PEERS.md, each was hit on this machine):
  * a single thread: all pjsua2 calls happen in the main loop around ``libHandleEvents(20)``;
    callbacks only record facts and schedule actions, so signals and timers are seen every 20 ms;
  * final answers are sent from the main loop, never inside ``onIncomingCall``;
  * the null audio device clocks the conference bridge (players/recorders need it);
  * recorders write their WAV header when destroyed, so they are released at DISCONNECTED;
  * every ``pj.Call`` stays referenced while alive and all are dropped before ``libDestroy``.
"""

import argparse
import gc
import json
import os
import re
import signal
import sys
import time

import pjsua2 as pj

# Compact header forms (RFC 3261 §7.3.3) expanded so the log always uses the long names.
COMPACT = {
    "f": "From", "t": "To", "m": "Contact", "i": "Call-ID", "v": "Via", "l": "Content-Length",
    "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding", "o": "Event",
}

# First line of a traced SIP message: "….RX 995 bytes Response msg 200/INVITE/… from UDP …:".
TRACE_LINE = re.compile(r"\b(RX|TX) \d+ bytes (?:Request|Response) msg ")


def parse_sip(whole):
    """Splits a raw SIP message into (start line, {header: value}, body).

    Repeated headers are joined with ", " (Via, Record-Route); names keep the sender's case except
    for compact forms. Continuation lines are folded into the previous header.
    """
    head, _, body = whole.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    start = lines[0].strip() if lines else ""
    headers = {}
    last = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip()
        name = COMPACT.get(name.lower(), name) if len(name) == 1 else name
        # Case-insensitive merge: the first spelling seen wins.
        key = next((k for k in headers if k.lower() == name.lower()), name)
        value = value.strip()
        headers[key] = headers[key] + ", " + value if key in headers else value
        last = key
    return start, headers, body


class Log:
    """Writes one JSON object per line and flushes it, so a reader polling the file sees it at once."""

    def __init__(self, path):
        self.out = open(path, "a", buffering=1, encoding="utf-8") if path else sys.stdout
        self.t0 = time.monotonic()

    def __call__(self, event, **fields):
        rec = {"event": event, "t_ms": int((time.monotonic() - self.t0) * 1000)}
        rec.update(fields)
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()


class SipTap(pj.LogWriter):
    """Receives PJSIP's log: copies it to --pj-log and turns the traced SIP messages into events.

    PJSIP traces every message it sends or receives at level 4 ("RX 995 bytes Response msg
    200/INVITE/cseq=… from UDP 127.0.0.1:5094:" then the message and "--end msg--"). Reading the
    trace sees responses the invite session consumes itself (a 407 answered with credentials).
    """

    def __init__(self, peer, path, level):
        pj.LogWriter.__init__(self)
        self.peer = peer
        self.level = level
        self.out = open(path, "a", buffering=1, encoding="utf-8") if path else None

    def write(self, entry):
        try:
            if self.out is not None and entry.level <= self.level:
                self.out.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
            first, sep, rest = entry.msg.partition("\n")
            m = TRACE_LINE.search(first) if sep else None
            if m:
                self.peer.on_sip_message(m.group(1).lower(), rest.split("--end msg--")[0])
        except Exception:  # a log callback must never raise into PJSIP
            pass


class Player(pj.AudioMediaPlayer):
    """A WAV player that tells the peer when a non-looping file ends."""

    def __init__(self, peer, call_no):
        pj.AudioMediaPlayer.__init__(self)
        self.peer = peer
        self.call_no = call_no

    def onEof2(self):
        # Only record the fact: stopping or destroying the player here would re-enter pjmedia.
        self.peer.schedule(0, lambda: self.peer.on_play_done(self.call_no))


class PeerCall(pj.Call):
    """One call with its per-call state: number, who hung up, player and recorder."""

    def __init__(self, peer, acc, call_id=pj.PJSUA_INVALID_ID):
        pj.Call.__init__(self, acc, call_id)
        self.peer = peer
        self.no = peer.next_call_no()
        self.local_hangup = False
        self.answered_final = False
        self.confirmed = False
        self.player = None
        self.recorder = None
        self.recording = None
        # Conference slot the player/recorder are connected to (a re-INVITE may give a new one).
        self.conf_slot = None
        self.done = False
        # When the audio stream first became active (monotonic s), for rtp_stats.
        self.media_at = None

    # -- callbacks: record and schedule only ----------------------------------------------------
    def onCallState(self, prm):
        try:
            self.peer.on_call_state(self)
        except Exception as exc:  # a Python exception must never unwind into pjsua
            self.peer.log("error", message=f"onCallState: {exc!r}")

    def onCallMediaState(self, prm):
        try:
            self.peer.on_media_state(self)
        except Exception as exc:
            self.peer.log("error", message=f"onCallMediaState: {exc!r}")

    def onDtmfDigit(self, prm):
        self.peer.log("dtmf", call=self.no, digit=prm.digit)

    def onCallTransferRequest(self, prm):
        # A REFER from the other side: logged; refused with --transfer-answer, else PJSIP
        # accepts it (202), calls the target itself and reports progress in NOTIFYs.
        self.peer.log("transfer-request", call=self.no, target=prm.dstUri)
        if self.peer.args.transfer_answer:
            prm.statusCode = self.peer.args.transfer_answer

    def onCallTransferStatus(self, prm):
        self.peer.log("transfer-status", call=self.no, code=prm.statusCode, final=prm.finalNotify)
    def onDtmfEvent(self, prm):
        # Start, updates and end of each RFC 4733 event; `flags` bit 1 (2) = the end, with the
        # event's duration in ms (what the sender's end packets said).
        self.peer.log("dtmf_event", call=self.no, digit=prm.digit, duration=prm.duration,
                      flags=prm.flags, timestamp=prm.timestamp)


class Account(pj.Account):
    def __init__(self, peer):
        pj.Account.__init__(self)
        self.peer = peer

    def onIncomingCall(self, prm):
        try:
            self.peer.on_incoming(self, prm)
        except Exception as exc:
            self.peer.log("error", message=f"onIncomingCall: {exc!r}")


class Peer:
    def __init__(self, args):
        self.args = args
        self.log = Log(args.log)
        self.timers = []  # (due monotonic seconds, seq, fn)
        self.seq = 0
        self.calls = {}  # call number -> PeerCall, kept alive while the call lives
        self.by_call_id = {}  # SIP Call-ID -> call number, to label traced responses
        self.call_count = 0
        self.uac_placed = 0
        self.stop_reason = None
        self.ep = None
        self.acc = None

    # -- SIP trace -------------------------------------------------------------------------------
    def on_sip_message(self, direction, whole):
        start, headers, body = parse_sip(whole)
        if self.args.log_sip:
            self.log("sip", dir=direction, start=start, headers=headers, body=body)
        if direction != "rx" or not start.startswith("SIP/2.0"):
            return
        if not headers.get("CSeq", "").upper().endswith("INVITE"):
            return
        parts = start.split(" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        self.log("response", call=self.by_call_id.get(headers.get("Call-ID", "")), code=code,
                 reason=parts[2] if len(parts) > 2 else "", headers=headers, sdp=body)

    # -- helpers ---------------------------------------------------------------------------------
    def next_call_no(self):
        self.call_count += 1
        return self.call_count

    def schedule(self, delay_ms, fn):
        self.seq += 1
        self.timers.append((time.monotonic() + delay_ms / 1000.0, self.seq, fn))

    def answer_code_for(self, no):
        """--answer takes a comma list used call by call; the last entry repeats."""
        codes = self.args.answer.split(",")
        return codes[min(no, len(codes)) - 1].strip()

    def record_path(self, no):
        path = self.args.record
        if "{n}" in path:
            return path.replace("{n}", str(no))
        if no == 1:
            return path
        root, ext = os.path.splitext(path)
        return f"{root}-{no}{ext or '.wav'}"

    # -- setup -----------------------------------------------------------------------------------
    def start(self):
        a = self.args
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 32
        cfg.uaConfig.userAgent = a.user_agent
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.noVad = True
        # Level 4 reaches the writer in any case: the SIP trace is how responses are observed.
        self.tap = SipTap(self, a.pj_log, a.pj_log_level)
        cfg.logConfig.writer = self.tap
        # (pjsua hands entries to the writer only up to consoleLevel; nothing goes to a console.)
        cfg.logConfig.level = cfg.logConfig.consoleLevel = max(4, a.pj_log_level)
        cfg.logConfig.msgLogging = True
        cfg.logConfig.decor = pj.PJ_LOG_HAS_TIME | pj.PJ_LOG_HAS_MICRO_SEC | pj.PJ_LOG_HAS_SENDER | pj.PJ_LOG_HAS_INDENT
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()
        for c in self.ep.codecEnum2():
            prio = 0
            if c.codecId.startswith(a.codec + "/"):
                prio = 255
            self.ep.codecSetPriority(c.codecId, prio)
        tc = pj.TransportConfig()
        tc.port = a.port
        tc.boundAddress = tc.publicAddress = a.ip
        if a.tls_cert:
            # A TLS listener (the carrier's side of a `transport: tls` trunk).
            tc.tlsConfig.certFile = a.tls_cert
            tc.tlsConfig.privKeyFile = a.tls_key
            tc.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
            tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)
        else:
            tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        self.ep.libStart()
        port = self.ep.transportGetInfo(tid).localName.rsplit(":", 1)[-1]
        self.sip_port = int(port)

        ac = pj.AccountConfig()
        ac.idUri = a.from_uri or f"sip:{a.user}@{a.ip}:{self.sip_port}"
        ac.sipConfig.transportId = tid
        if a.auth:
            user, _, password = a.auth.partition(":")
            ac.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        mt = ac.mediaConfig.transportConfig
        mt.boundAddress = mt.publicAddress = a.ip
        mt.port = a.rtp_port
        mt.portRange = a.rtp_port_range if a.rtp_port else 0
        if a.srtp != "off":
            # SDES-SRTP; secure signalling 1 = only over a TLS hop (RFC 4568 §8.3).
            ac.mediaConfig.srtpUse = {"optional": pj.PJMEDIA_SRTP_OPTIONAL,
                                      "mandatory": pj.PJMEDIA_SRTP_MANDATORY}[a.srtp]
            ac.mediaConfig.srtpSecureSignaling = 1
        ac.natConfig.iceEnabled = False
        ac.natConfig.sdpNatRewriteUse = 0
        ac.natConfig.contactRewriteUse = 0
        ac.natConfig.viaRewriteUse = 0
        self.acc = Account(self)
        self.acc.create(ac)
        self.log("ready", sip_port=self.sip_port, pid=os.getpid())
        if a.call:
            self.schedule(0, self.place_call)

    # -- UAC -------------------------------------------------------------------------------------
    def place_call(self):
        a = self.args
        self.uac_placed += 1
        call = PeerCall(self, self.acc)
        self.calls[call.no] = call
        prm = pj.CallOpParam(True)
        for h in a.header:
            name, _, value = h.partition(":")
            sh = pj.SipHeader()
            sh.hName = name.strip()
            sh.hValue = value.strip()
            prm.txOption.headers.append(sh)
        try:
            call.makeCall(a.call, prm)
            self.by_call_id[call.getInfo().callIdString] = call.no
            self.log("calling", call=call.no, uri=a.call)
            if a.cancel_after_ms is not None:
                self.schedule(a.cancel_after_ms, lambda: self.cancel(call))
        except pj.Error as exc:
            self.log("error", message=f"makeCall: {exc.info()}")
            del self.calls[call.no]
            self.after_uac_call()

    def after_uac_call(self):
        if self.uac_placed < self.args.call_count:
            self.schedule(self.args.call_interval_ms, self.place_call)
        elif not self.args.stay:
            self.schedule(0, lambda: self.stop("calls done"))

    # -- UAS -------------------------------------------------------------------------------------
    def on_incoming(self, acc, prm):
        call = PeerCall(self, acc, prm.callId)
        self.calls[call.no] = call
        start, headers, body = parse_sip(prm.rdata.wholeMsg)
        self.by_call_id[headers.get("Call-ID", "")] = call.no
        parts = start.split(" ")
        ruri = parts[1] if len(parts) > 1 else ""
        headers = dict(headers)
        headers["Request-URI"] = ruri
        self.log("incoming", call=call.no, request_uri=ruri, headers=headers, sdp=body,
                 src=prm.rdata.srcAddress)
        code = self.answer_code_for(call.no)
        if code == "none":
            return  # not even a provisional: the caller sees only 100 Trying
        # Only a provisional answer inside the callback (a final one here aborted pjsua).
        ring = int(self.args.ring_code)
        self.send_answer(call, ring)
        if code == "ring":
            return
        self.schedule(self.args.answer_after_ms, lambda: self.final_answer(call, int(code)))

    def send_answer(self, call, code):
        op = pj.CallOpParam()
        op.statusCode = code
        call.answer(op)
        self.log("answer", call=call.no, code=code)

    def final_answer(self, call, code):
        if call.done or call.no not in self.calls:
            return  # cancelled meanwhile
        try:
            info = call.getInfo()
        except pj.Error:
            return
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            return
        if code >= 300:
            call.local_hangup = True
        call.answered_final = True
        try:
            self.send_answer(call, code)
        except pj.Error as exc:
            self.log("error", message=f"answer {code}: {exc.info()}")

    def reinvite(self, call):
        """Sends a re-INVITE with a fresh SDP offer (PJSIP makes new SDES keys for it)."""
        if call.done:
            return
        try:
            prm = pj.CallOpParam(True)
            # e.g. 16 = PJSUA_CALL_REINIT_MEDIA: a new media transport, so new SDES keys.
            prm.opt.flag |= self.args.reinvite_flags
            call.reinvite(prm)
            self.log("reinvite_sent", call=call.no, flags=self.args.reinvite_flags)
        except pj.Error as exc:
            self.log("error", message=f"reinvite: {exc.info()}")

    def send_dtmf(self, call):
        """Presses --dtmf's keys (RFC 4733 telephone-events, PJSIP's default method)."""
        try:
            call.dialDtmf(self.args.dtmf)
            self.log("dtmf_sent", call=call.no, digits=self.args.dtmf)
        except pj.Error as exc:
            self.log("error", message=f"dtmf: {exc.info()}")

    # -- shared call handling --------------------------------------------------------------------
    def on_call_state(self, call):
        info = call.getInfo()
        self.log("state", call=call.no, state=info.stateText, code=info.lastStatusCode,
                 reason=info.lastReason)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not call.confirmed:
            call.confirmed = True
            if self.args.bye_after_ms is not None:
                self.schedule(self.args.bye_after_ms, lambda: self.hangup(call))
            if self.args.dtmf:
                self.schedule(self.args.dtmf_after_ms, lambda: self.send_dtmf(call))
            if self.args.reinvite_after_ms is not None:
                self.schedule(self.args.reinvite_after_ms, lambda: self.reinvite(call))
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not call.done:
            call.done = True
            by = "local" if call.local_hangup else "remote"
            is_uas = info.role == pj.PJSIP_ROLE_UAS
            if is_uas and not call.answered_final and info.lastStatusCode == 487:
                self.log("cancelled", call=call.no)
            # Media objects are released from the main loop, after this callback returns.
            self.schedule(0, lambda: self.finish(call, info.lastStatusCode, info.lastReason, by))

    def finish(self, call, code, reason, by):
        recording = call.recording
        self.release_media(call)
        self.log("disconnected", call=call.no, code=code, reason=reason, by=by,
                 recording=recording)
        self.calls.pop(call.no, None)
        if self.args.call:
            self.after_uac_call()

    def release_media(self, call):
        # Destroying the recorder writes its WAV header; the player just stops.
        call.player = None
        call.recorder = None

    def on_media_state(self, call):
        info = call.getInfo()
        for i, mi in enumerate(info.media):
            if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            am = call.getAudioMedia(i)
            if call.media_at is None:
                call.media_at = time.monotonic()
            if call.conf_slot is not None:
                # A re-INVITE may re-create the stream (a new conference slot, or the same one
                # without its connections): the recorder and player keep going on it.
                if call.recorder is not None:
                    am.startTransmit(call.recorder)
                if call.player is not None:
                    call.player.startTransmit(am)
            call.conf_slot = am.getPortId()
            try:
                si = call.getStreamInfo(i)
                self.log("media", call=call.no, remote_rtp=si.remoteRtpAddress, codec=si.codecName)
            except pj.Error:
                self.log("media", call=call.no, remote_rtp=None, codec=None)
            if self.args.record and call.recorder is None:
                call.recording = self.record_path(call.no)
                rec = pj.AudioMediaRecorder()
                rec.createRecorder(call.recording)
                am.startTransmit(rec)
                call.recorder = rec
            if self.args.play and call.player is None:
                player = Player(self, call.no)
                opts = 0 if self.args.play_loop else pj.PJMEDIA_FILE_NO_LOOP
                player.createPlayer(self.args.play, opts)
                player.startTransmit(am)
                call.player = player

    def on_play_done(self, no):
        self.log("play_done", call=no)
        call = self.calls.get(no)
        if call is not None and self.args.bye_after_play:
            self.schedule(self.args.bye_after_play_ms, lambda: self.hangup(call))

    def cancel(self, call):
        # Before the answer pjsua's hangup sends CANCEL; once confirmed this leaves the call alone.
        if not call.confirmed:
            self.hangup(call)

    def log_rtp_stats(self, call):
        # The stream (and its counters) is gone once the call is disconnected: read it now.
        info = call.getInfo()
        for i, mi in enumerate(info.media):
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            try:
                st = call.getStreamStat(i)
            except pj.Error:
                continue
            rx = st.rtcp.rxStat
            media_s = None
            if call.media_at is not None:
                media_s = round(time.monotonic() - call.media_at, 3)
            self.log("rtp_stats", call=call.no, rx_pkt=rx.pkt, rx_loss=rx.loss, rx_dup=rx.dup,
                     rx_jitter_mean_us=rx.jitterUsec.mean, rx_jitter_max_us=rx.jitterUsec.max,
                     media_s=media_s)
            return

    def hangup(self, call):
        if call.done or call.no not in self.calls:
            return
        call.local_hangup = True
        if call.confirmed:
            self.log_rtp_stats(call)
        try:
            call.hangup(pj.CallOpParam(True))
        except pj.Error as exc:
            self.log("error", message=f"hangup: {exc.info()}")

    # -- main loop -------------------------------------------------------------------------------
    def stop(self, reason):
        if self.stop_reason is None:
            self.stop_reason = reason

    def run(self):
        deadline = time.monotonic() + self.args.max_seconds if self.args.max_seconds else None
        while self.stop_reason is None:
            self.ep.libHandleEvents(20)
            now = time.monotonic()
            self.run_due(now)
            if deadline is not None and now >= deadline:
                self.stop("max-seconds")

    def run_due(self, now):
        due = sorted(t for t in self.timers if t[0] <= now)
        if not due:
            return
        self.timers = [t for t in self.timers if t[0] > now]
        for _, _, fn in due:
            try:
                fn()
            except pj.Error as exc:
                self.log("error", message=exc.info())

    def mark_all_local(self):
        for call in self.calls.values():
            if not call.done:
                call.local_hangup = True

    def release_all_media(self):
        for call in self.calls.values():
            self.release_media(call)

    def shutdown(self):
        # Hang up what is still up and let the BYEs/answers go out before tearing pjsua down.
        # No loop variable may keep a pj.Call alive past libDestroy: use helpers, not loops here.
        self.mark_all_local()
        try:
            self.ep.hangupAllCalls()
        except pj.Error:
            pass
        end = time.monotonic() + 1.0
        while time.monotonic() < end and any(not c.done for c in self.calls.values()):
            self.ep.libHandleEvents(20)
        # Run the scheduled finish() of calls that just ended so their recordings are closed;
        # timers not yet due (answers, BYEs) are dropped.
        self.run_due(float("inf"))
        self.release_all_media()
        self.calls.clear()
        self.timers = []
        self.acc = None
        # A pj.Call destroyed after libDestroy aborts the process: collect every last one now.
        gc.collect()
        self.log("exit", reason=self.stop_reason)
        self.ep.libDestroy()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ip", default="127.0.0.1", help="address to bind and advertise (loopback only)")
    p.add_argument("--port", type=int, default=0, help="SIP UDP port; 0 picks a free one (see 'ready')")
    p.add_argument("--rtp-port", type=int, default=0, help="first RTP port; 0 lets PJSIP choose")
    p.add_argument("--rtp-port-range", type=int, default=20)
    p.add_argument("--user", default="peer", help="user part of our URI")
    p.add_argument("--from-uri", help="our identity URI (From of calls we place)")
    p.add_argument("--user-agent", default="dialgate-test-peer")
    p.add_argument("--codec", default="PCMU", help="the only codec offered/accepted (PCMU or PCMA)")
    p.add_argument("--answer", default="200",
                   help="final answer: a SIP code, 'ring' (never answer), 'none' (not even 180); "
                        "a comma list applies call by call, the last one repeats")
    p.add_argument("--ring-code", default="180", help="provisional sent at once: 180 or 183 (early media)")
    p.add_argument("--answer-after-ms", type=int, default=0)
    p.add_argument("--play", help="WAV (8 kHz mono 16-bit) played to the other side once media is up")
    p.add_argument("--play-loop", action="store_true", help="loop --play instead of playing it once")
    p.add_argument("--bye-after-play", action="store_true", help="hang up when --play ends")
    p.add_argument("--bye-after-play-ms", type=int, default=0, help="delay after the end of --play")
    p.add_argument("--record", help="WAV of what the other side sends; call N>1 gets -N ({n} is replaced)")
    p.add_argument("--bye-after-ms", type=int, help="send BYE this long after the call is confirmed")
    p.add_argument("--max-seconds", type=float, default=0, help="hard stop (hangs up everything)")
    p.add_argument("--dtmf", help="keys to press (RFC 4733) once the call is confirmed")
    p.add_argument("--dtmf-after-ms", type=int, default=500, help="delay of --dtmf after confirmation")
    p.add_argument("--reinvite-after-ms", type=int, help="send a re-INVITE (new offer) this long after confirmation")
    p.add_argument("--reinvite-flags", type=int, default=0,
                   help="pjsua_call_flag bits of that re-INVITE (16: PJSUA_CALL_REINIT_MEDIA, new SRTP keys)")
    p.add_argument("--auth", help="user:pass for digest challenges (UAC)")
    p.add_argument("--call", help="UAC mode: call this URI once ready")
    p.add_argument("--call-count", type=int, default=1, help="UAC: sequential calls to place")
    p.add_argument("--call-interval-ms", type=int, default=0, help="UAC: pause between calls")
    p.add_argument("--header", action="append", default=[], help="UAC: extra 'Name: value' header")
    p.add_argument("--cancel-after-ms", type=int, help="UAC: CANCEL a call still unanswered after this long")
    p.add_argument("--stay", action="store_true", help="UAC: keep running after the last call")
    p.add_argument("--tls-cert", help="listen on TLS (not UDP) with this PEM certificate")
    p.add_argument("--tls-key", help="PEM key of --tls-cert")
    p.add_argument("--srtp", default="off", choices=["off", "optional", "mandatory"],
                   help="SDES-SRTP on the audio stream")
    p.add_argument("--log", help="JSON-lines event log (default stdout)")
    p.add_argument("--pj-log", help="PJSIP log file (SIP messages at level >= 4)")
    p.add_argument("--pj-log-level", type=int, default=1)
    p.add_argument("--transfer-answer", type=int, default=0,
                   help="answer a REFER with this code (e.g. 603) instead of accepting it")
    p.add_argument("--log-sip", action="store_true", help="log every SIP message sent/received as a 'sip' event")
    args = p.parse_args()
    if args.ring_code not in ("180", "183"):
        p.error("--ring-code must be 180 or 183")
    # Test traffic stays on loopback (project rule): refuse any other address.
    if not (args.ip.startswith("127.") or args.ip == "::1"):
        p.error("--ip must be a loopback address")

    peer = Peer(args)
    # Only flags are set in the handlers; the main loop notices within 20 ms.
    signal.signal(signal.SIGTERM, lambda *_: peer.stop("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: peer.stop("SIGINT"))
    try:
        peer.start()
    except pj.Error as exc:
        peer.log("error", message=f"start: {exc.info()}")
        peer.log("exit", reason="start failed")
        return 2
    peer.run()
    peer.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
