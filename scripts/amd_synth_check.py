#!/usr/bin/env python3
"""Builds a small *independent* AMD check set (other phrases, voices, beep tones, noise and fax
variants than the dev corpus) with espeak-ng + sox, in the dev corpus format: 8 kHz mono
16-bit, 300-3400 Hz band-pass, line noise, G.711 u-law round trip, labels.csv with notes.

usage: scripts/amd_synth_check.py OUTDIR [SEED]
Then:  cargo run --release --example amd_eval -- OUTDIR
Stdlib only (wave, struct, random); needs espeak-ng and sox on PATH.
"""
import math, os, random, struct, subprocess, sys, tempfile, wave

SR = 8000
out = sys.argv[1]
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 4242)
os.makedirs(out, exist_ok=True)
tmp = tempfile.mkdtemp(prefix="amdsynth")

def amp(dbfs):  # RMS -> linear, full-scale square wave = 0 dBFS (as dialgate's dsp)
    return 32768 * 10 ** (dbfs / 20)

def say(text, voice, speed, pitch):
    w = os.path.join(tmp, "s.wav"); r = os.path.join(tmp, "r.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", w, text], check=True)
    subprocess.run(["sox", w, "-r", "8000", "-c", "1", "-b", "16", r, "sinc", "300-3400"], check=True)
    with wave.open(r) as f:
        x = list(struct.unpack("<%dh" % f.getnframes(), f.readframes(f.getnframes())))
    # trim leading/trailing near-silence
    th = max(abs(v) for v in x) * 0.02
    i = next(k for k, v in enumerate(x) if abs(v) > th); j = len(x) - next(k for k, v in enumerate(reversed(x)) if abs(v) > th)
    return [float(v) for v in x[i:j]]

def set_level(x, dbfs):
    # level of active speech: RMS over samples in frames above -30 dB of the peak frame
    fr = [x[k:k + 160] for k in range(0, len(x), 160)]
    e = [sum(v * v for v in f) / max(1, len(f)) for f in fr]
    mx = max(e); act = [f for f, en in zip(fr, e) if en > mx * 1e-3]
    rms = math.sqrt(sum(sum(v * v for v in f) for f in act) / max(1, sum(len(f) for f in act)))
    g = amp(dbfs) / max(rms, 1e-9)
    return [v * g for v in x]

def tone(hz, secs, peak_dbfs, phase_rev=None, am=0.0):
    a = 32768 * 10 ** (peak_dbfs / 20)
    n = int(secs * SR)
    res = []
    for i in range(n):
        t = i / SR
        ph = math.pi if phase_rev and int(t / phase_rev) % 2 else 0.0
        env = 1 + am * math.sin(2 * math.pi * 15 * t)
        res.append(a * env / (1 + am) * math.sin(2 * math.pi * hz * t + ph))
    return res

def fsk(secs, peak_dbfs):
    a = 32768 * 10 ** (peak_dbfs / 20); bits = []
    while len(bits) * SR / 300 < secs * SR:
        bits += [0, 1, 1, 1, 1, 1, 1, 0] * 20 + [rng.randint(0, 1) for _ in range(200)]
    res = []; ph = 0.0
    for b in bits:
        for _ in range(int(SR / 300)):
            ph += 2 * math.pi * (1650 if b else 1850) / SR
            res.append(a * math.sin(ph))
            if len(res) >= secs * SR:
                return res
    return res

def sil(secs):
    return [0.0] * int(secs * SR)

def finish(name, label, parts, noise_kind, noise_db, notes, total):
    x = []
    for p in parts:
        x += p
    x += [0.0] * max(0, int(total * SR) - len(x))
    # line noise, band-passed afterwards together with everything
    a = amp(noise_db); b = 0.0
    for i in range(len(x)):
        if noise_kind == "white":
            n = rng.gauss(0, 1)
        else:
            b = 0.995 * b + rng.gauss(0, 1); n = b / 7.0
        x[i] += a * n * (1.0 if noise_kind == "white" else 1.6)
    raw = os.path.join(tmp, "x.raw")
    with open(raw, "wb") as f:
        f.write(struct.pack("<%dh" % len(x), *[max(-32768, min(32767, int(round(v)))) for v in x]))
    u = os.path.join(tmp, "u.wav")
    subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1", raw,
                    "-e", "u-law", u, "sinc", "300-3400"], check=True)
    subprocess.run(["sox", u, "-e", "signed", "-b", "16", os.path.join(out, name)], check=True)
    rows.append(f'{name},{label},"{notes}; noise {noise_kind} {noise_db}dBFS; len {total:.1f}s"')

voices = ["en-gb", "en-us+f2", "en+m1", "en-gb-scotland", "en-us+m4", "en+f5", "en-us+klatt4"]
rows = []
n = 0
def nm():
    global n; n += 1; return f"chk-{n:03d}.wav"

humans = ["Hello?", "Yeah?", "Hi, it's Dana.", "Good evening.", "Speaking.", "Hello, this is Raj.",
          "Hey, what's up?", "Hello? Who is it?", "Morning!", "Yes, hello.", "Hi there, Tom speaking."]
seconds = ["Hello? Is anybody there?", "Hello?", "Hello? I can't hear you."]
for k, h in enumerate(humans):
    v = voices[k % len(voices)]; lvl = rng.uniform(-24, -16); t0 = rng.uniform(0.2, 1.5)
    s1 = set_level(say(h, v, rng.randint(140, 185), rng.randint(35, 65)), lvl)
    parts = [sil(t0), s1]; notes = f'speech {t0:.2f}-{t0 + len(s1) / SR:.2f}s ""{h}""'
    if k % 2 == 0:
        gap = rng.uniform(2.1, 3.2); s2t = seconds[k % 3]
        s2 = set_level(say(s2t, v, rng.randint(140, 185), rng.randint(35, 65)), lvl)
        st = t0 + len(s1) / SR + gap
        parts += [sil(gap), s2]; notes += f'; speech {st:.2f}-{st + len(s2) / SR:.2f}s ""{s2t}""'
    finish(nm(), "human", parts, rng.choice(["white", "brown"]), rng.randint(-45, -40), notes + f"; voice espeak:{v}", 8.0)

machines = [
    ("Hi, you've got Maria's phone. Sorry I can't pick up, leave a message and I'll call you back.", True),
    ("This is the voice mailbox of five five five, zero one nine nine. Please record your message after the tone.", True),
    ("We're sorry, the number you have dialed is not in service. Please check the number and try again.", False),
    ("Thanks for calling Lakeside Dental. Our office is closed. Please call back during business hours.", False),
    ("Hey, it's Jordan, leave a message!", True),
    ("You have reached the Garcia family. We can't get to the phone right now. Leave your name and number after the beep.", True),
    ("Hello. I am not here at the moment. Please leave a short message.", True),
    ("The wireless customer you are calling is not available. Please try your call again later.", False),
    ("Hi, this is Alex from accounting. I'm away from my desk, leave a message and I will return your call.", True),
    ("Welcome to the voicemail service. The person you are trying to reach has a mailbox that has not been set up yet.", False),
]
beeps = [440, 1400, 1950, 600, 950, 1200, 500, 1700]
for k, (g, beep) in enumerate(machines):
    v = voices[(k + 3) % len(voices)]; lvl = rng.uniform(-24, -16); t0 = rng.uniform(0.1, 1.4)
    s = set_level(say(g, v, rng.randint(140, 185), rng.randint(35, 65)), lvl)
    parts = [sil(t0), s]; end = t0 + len(s) / SR
    notes = f'greeting {t0:.2f}-{end:.2f}s ({end - t0:.1f}s) ""{g}""'
    if beep:
        gap = rng.uniform(0.2, 0.8); f = beeps[k % len(beeps)]; d = rng.uniform(0.2, 1.2)
        parts += [sil(gap), tone(f, d, rng.uniform(-18, -6))]
        notes += f"; beep {f}Hz {d:.2f}s at {end + gap:.2f}s"
    else:
        notes += "; no beep"
    finish(nm(), "machine", parts, rng.choice(["white", "brown"]), rng.randint(-45, -40), notes + f"; voice espeak:{v}", max(8.0, end + 3.0))

# fax variants
t0 = 0.4; finish(nm(), "fax", [sil(t0), tone(2100, 3.3, -10, phase_rev=0.45, am=0.2)], "white", -42, f"CED 2100Hz {t0:.2f}-{t0 + 3.3:.2f}s (ANSam)", 8.0)
t0 = 0.9; finish(nm(), "fax", [sil(t0), fsk(2.0, -12)], "brown", -43, f"V21 {t0:.2f}-{t0 + 2.0:.2f}s (no CED)", 6.0)
t0 = 0.3; finish(nm(), "fax", [sil(t0), tone(1100, 0.5, -16), sil(3.0), tone(1100, 0.5, -16)], "white", -40, f"CNG 1100Hz {t0:.2f}-{t0 + 0.5:.2f}s; CNG 1100Hz {t0 + 3.5:.2f}-{t0 + 4.0:.2f}s", 8.0)
t0 = 1.2; finish(nm(), "fax", [sil(t0), tone(2100, 2.8, -6), sil(0.075), fsk(1.8, -8)], "brown", -45, f"CED 2100Hz {t0:.2f}-{t0 + 2.8:.2f}s; V21 {t0 + 2.875:.2f}-{t0 + 4.675:.2f}s", 8.0)
# SIT intercept (with small gaps) then announcement
v = "en-us"; s = set_level(say("The number you have reached has been disconnected.", v, 160, 50), -20)
sit = tone(985.2, 0.38, -14) + sil(0.03) + tone(1428.5, 0.276, -14) + sil(0.03) + tone(1776.7, 0.38, -14)
finish(nm(), "machine", [sil(0.5), sit, sil(0.4), s], "white", -41, f"SIT 0.50-1.60s; greeting 2.00-{2.0 + len(s) / SR:.2f}s", 8.0)
# silence variants
for kind, db in [("white", -40), ("brown", -45), ("brown", -40)]:
    finish(nm(), "silence", [], kind, db, "line noise only", 10.0)

with open(os.path.join(out, "labels.csv"), "w") as f:
    f.write("file,label,notes\n" + "\n".join(rows) + "\n")
print(f"{len(rows)} clips in {out}")
