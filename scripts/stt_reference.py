"""Reference recognition for `scripts/stt-reference`: a CTranslate2 Whisper model run by
faster-whisper (the implementation the weights were converted for) over a directory of labelled
clips, scored with dialgate's WER normalisation (a port of `stt::eval::normalize`: lower case,
punctuation removed, Whisper's contractions and hesitations, "ok" = "okay", numbers as words up
to 999 and digit by digit above). Each clip is decoded whole, with Whisper's 30 s window,
temperature 0 (no fallback), no timestamps: what the model itself can do, without dialgate's
segmentation, short windows or filters.

usage: stt_reference.py MODEL_DIR SET_DIR [--prompt TEXT] [--beam N] [--threads N]
SET_DIR holds labels.csv (file,text) and 8 kHz WAV clips; sox converts them to 16 kHz float.
"""
import argparse
import csv
import os
import re
import subprocess
import time

import numpy as np
from faster_whisper import WhisperModel

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
WHOLE = {"won't": "will not", "can't": "can not", "let's": "let us", "ain't": "aint"}
SUFFIX = [("n't", " not"), ("'re", " are"), ("'s", " is"), ("'d", " would"), ("'ll", " will"),
          ("'ve", " have"), ("'m", " am")]
FILLERS = {"hmm", "mm", "mhm", "mmm", "uh", "um"}


def number_words(n):
    """As dialgate's `number_words`: up to 999 as said, longer numbers digit by digit."""
    if n >= 1000:
        return " ".join(ONES[int(c)] for c in str(n))
    h, rest, out = n // 100, n % 100, []
    if h > 0:
        out += [ONES[h], "hundred"]
    if rest >= 20:
        out.append(TENS[rest // 10])
        if rest % 10 > 0:
            out.append(ONES[rest % 10])
    elif rest > 0 or h == 0:
        out.append(ONES[rest])
    return " ".join(out)


def normalize(text):
    """Words as `stt::eval::normalize` gives them."""
    expanded = []
    for tok in re.split(r"[^\w']|_", text.lower().replace("\u2019", "'")):
        tok = tok.strip("'")
        if not tok:
            continue
        word = WHOLE.get(tok)
        if word is None:
            word = next((tok[: -len(s)] + full for s, full in SUFFIX
                         if tok.endswith(s) and len(tok) > len(s)), tok)
        expanded.append(word.replace("'", ""))
    out = []
    for w in " ".join(expanded).split():
        if w in FILLERS:
            continue
        if w.isascii() and w.isdigit() and len(w) <= 18:
            out += number_words(int(w)).split(" ")
        else:
            out.append("okay" if w == "ok" else w)
    return out


def word_errors(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref):
        cur = [i + 1] * (len(hyp) + 1)
        for j, h in enumerate(hyp):
            cur[j + 1] = min(prev[j] + (r != h), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[len(hyp)]


def load_16k(path):
    raw = subprocess.run(
        ["sox", path, "-r", "16000", "-e", "floating-point", "-b", "32", "-c", "1", "-t", "raw", "-"],
        check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("set")
    ap.add_argument("--prompt", default=None)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    model = WhisperModel(a.model, device="cpu", compute_type="float32", cpu_threads=a.threads)
    with open(os.path.join(a.set, "labels.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    errors = words = right = 0
    compute = 0.0
    for row in rows:
        audio = load_16k(os.path.join(a.set, row["file"]))
        t0 = time.time()
        segments, _ = model.transcribe(
            audio, language="en", beam_size=a.beam, best_of=1, temperature=0.0,
            initial_prompt=a.prompt, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False)
        hyp = "".join(s.text for s in segments).strip()
        compute += time.time() - t0
        ref_words, hyp_words = normalize(row["text"]), normalize(hyp)
        e = word_errors(ref_words, hyp_words)
        errors, words, right = errors + e, words + len(ref_words), right + (e == 0)
        print(f"{row['file']:<28} {e:>2}/{len(ref_words):<2} ref={row['text']!r} hyp={hyp!r}")
    print(f"model {a.model}  prompt {a.prompt!r}  beam {a.beam}  clips {len(rows)}")
    print(f"WER {100 * errors / max(words, 1):.1f}% ({errors}/{words})  "
          f"fully right {100 * right / max(len(rows), 1):.1f}% ({right}/{len(rows)})  "
          f"compute {compute:.1f} s")


if __name__ == "__main__":
    main()
