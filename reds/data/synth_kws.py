"""synth-kws: a small, real spoken-keyword data set made offline with espeak-ng and sox.

It exists so that the keyword-spotting pipeline can be exercised end to end on a machine
without the 2.3 GB Speech Commands download. It is laid out exactly like Speech Commands v2
(one folder per word, `_background_noise_/`, `validation_list.txt`, `testing_list.txt`,
files named `<speaker>_nohash_<n>.wav`), so the same loader reads both.

A "speaker" is one espeak-ng accent + voice variant; its utterances share a hash and go to
one split, as in Speech Commands. Every utterance also gets its own pitch, speed and
amplitude, and is placed at a random offset in its 1 s clip. All choices come from `seed`.

Speech comes from libespeak-ng loaded with ctypes in each of `jobs` worker processes (the
espeak-ng program is the fallback: same voices, ten times slower to start per word), is
resampled from 22050 Hz to 16 kHz with an FFT, and trimmed and placed with numpy; sox makes
the background noise. Everything is written to a hidden folder next to `out_dir` and renamed
into place at the end, so an interrupted run leaves no half data set. The library keeps a
little state between words, so reruns match in every choice but not bit for bit.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import hashlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import RedsError
from .speech_commands import NOISE_DIR, WORDS, parse_words

UNKNOWN_WORDS = ["bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow"]
# espeak-ng's own English accents (the mbrola "mb/" voices need an extra program).
# Named as espeak-ng's voice files, which both the library and the CLI accept ("en" is en-GB).
ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc"]
# Voice variants (espeak-ng-data/voices/!v) that sound like plausible different speakers;
# those missing from the installed espeak-ng are skipped. Left out: Andy, Gene, ed and paul
# saturate (clip) at amplitude 100; the others are robot or effect voices, or tuned for
# other languages.
VARIANTS = ["", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "croak", "whisper", "klatt", "klatt2", "klatt3", "Annie", "Lee", "Mike", "adam", "aunty",
            "belinda", "boris", "david", "grandma", "linda", "max", "quincy", "rob", "steph", "travis",
            "victor", "zac"]
PITCH, SPEED, AMPLITUDE = (20, 80), (120, 200), (60, 100)  # espeak-ng -p, -s, -a (inclusive)
RATE, CLIP = 16000, 16000
HELD_OUT = 0.10  # share of speakers in validation, and again in test
MANIFEST = "synth_kws.json"
NOISES = {  # file -> sox synth effect chain, 10 s each, quiet
    "white_noise.wav": ["synth", "10", "whitenoise", "vol", "0.1"],
    "pink_noise.wav": ["synth", "10", "pinknoise", "vol", "0.15"],
    "brown_noise.wav": ["synth", "10", "brownnoise", "vol", "0.15"],
    "mains_hum.wav": ["synth", "10", "square", "50", "lowpass", "600", "vol", "0.05"],
    "fluttering_noise.wav": ["synth", "10", "pinknoise", "tremolo", "0.7", "80", "vol", "0.15"],
    "rumble.wav": ["synth", "10", "brownnoise", "lowpass", "200", "vol", "0.25"],
}
INSTALL = "install it: apt-get install espeak-ng sox"


def _tools() -> None:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RedsError(f"{tool} not found; {INSTALL}")


def _voice_files(kind: str) -> list[str]:
    """The File column of `espeak-ng --voices=<kind>` (e.g. 'gmw/en-US', '!v/m3')."""
    out = subprocess.run(["espeak-ng", f"--voices={kind}"], capture_output=True, text=True).stdout
    return [f[4] for f in (line.split() for line in out.splitlines()[1:]) if len(f) >= 5]


def speakers() -> list[str]:
    """Installed accent+variant combinations, e.g. 'en-us+m3' ('en' alone for no variant)."""
    accents = {f.rsplit("/", 1)[-1].lower() for f in _voice_files("en") if not f.startswith("mb/")}
    variants = {f.split("/", 1)[1] for f in _voice_files("variant") if f.startswith("!v/")}
    found_accents = [a for a in ACCENTS if a in accents]
    if not found_accents:
        raise RedsError(f"espeak-ng lists none of the English voices {', '.join(ACCENTS)}; {INSTALL}")
    found_variants = [v for v in VARIANTS if v == "" or v in variants]
    return [a + (f"+{v}" if v else "") for a in found_accents for v in found_variants]


def speaker_hash(voice: str) -> str:
    return hashlib.sha1(voice.encode()).hexdigest()[:8]


def vocabulary(words: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(keywords, unknown words): REDS's ten keywords, or `words`, and the unknown words
    not among them."""
    keywords = list(words) if words else list(WORDS)
    return keywords, [w for w in UNKNOWN_WORDS if w not in keywords]


def plan(per_word: int, seed: int, voices: list[str], words: list[str] | None = None
         ) -> tuple[list[dict], dict[str, str]]:
    """The utterances to make (word, voice, prosody, placement, file) and speaker -> split.

    Each word cycles through a seeded shuffle of the voices, so every word is spread over
    as many speakers as possible; held-out speakers are drawn among those actually used.
    `words`: the keywords (default REDS's ten).
    """
    keywords, unknown = vocabulary(words)
    rng = np.random.default_rng(seed)
    jobs, count = [], {}
    for word in keywords + unknown:
        n = per_word if word in keywords else max(1, per_word // 3)
        order = rng.permutation(len(voices))
        for k in range(n):
            voice = voices[order[k % len(voices)]]
            spk = speaker_hash(voice)
            idx = count.get((word, spk), 0)
            count[(word, spk)] = idx + 1
            jobs.append({"word": word, "voice": voice, "speaker": spk,
                         "pitch": int(rng.integers(PITCH[0], PITCH[1] + 1)),
                         "speed": int(rng.integers(SPEED[0], SPEED[1] + 1)),
                         "amplitude": int(rng.integers(AMPLITUDE[0], AMPLITUDE[1] + 1)),
                         "place": float(rng.random()),
                         "path": f"{word}/{spk}_nohash_{idx}.wav"})
    used = sorted({j["speaker"] for j in jobs})
    held = max(1, round(len(used) * HELD_OUT)) if len(used) >= 3 else 0
    order = np.random.default_rng([seed, 1]).permutation(len(used))
    split = {used[i]: "val" if rank < held else "test" if rank < 2 * held else "train"
             for rank, i in enumerate(order)}
    return jobs, split


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def _trim(speech: np.ndarray) -> np.ndarray:
    """Drop espeak-ng's leading/trailing silence (keeping 10 ms) and cut at 1 s."""
    level = np.abs(speech.astype(np.int32))
    loud = np.flatnonzero(level > max(64, int(level.max()) // 50))
    if loud.size:
        speech = speech[max(loud[0] - RATE // 100, 0): loud[-1] + RATE // 100]
    return speech[:CLIP]


def _place(speech: np.ndarray, place: float) -> np.ndarray:
    """Put the (trimmed) word at a random offset in exactly one second."""
    out = np.zeros(CLIP, dtype=np.int16)
    start = int(place * (CLIP - len(speech)))
    out[start:start + len(speech)] = speech
    return out


def _run(cmd: list[str], data: bytes | None = None) -> bytes:
    p = subprocess.run(cmd, input=data, capture_output=True)
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise RedsError(f"`{' '.join(cmd)}` failed (exit {p.returncode}): {err[-1] if err else 'no message'}")
    return p.stdout


class LibEspeak:
    """espeak-ng inside this process through libespeak-ng: about 1 ms per word, where starting
    the espeak-ng program costs about 12 ms. The library is not thread-safe and holds one
    callback: one instance per process, through `engine()`."""

    _SYNCHRONOUS, _POS_CHARACTER, _CHARS_AUTO = 2, 1, 0  # from espeak-ng's speak_lib.h
    _RATE, _VOLUME, _PITCH = 1, 2, 3
    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    _made = False  # one per process (engine()): a second would leave the first's callback dangling

    def __init__(self):
        if LibEspeak._made:
            raise RuntimeError("libespeak-ng is already loaded in this process: use synth_kws.engine()")
        name = ctypes.util.find_library("espeak-ng")
        if name is None:
            raise OSError("libespeak-ng not found")
        lib = ctypes.CDLL(name)
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(self._SYNCHRONOUS, 0, None, 0)
        if self.rate <= 0:
            raise OSError("espeak_Initialize failed")
        self._chunks: list[bytes] = []
        self._callback = self._CALLBACK(self._collect)  # referenced here so it outlives the call
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib
        LibEspeak._made = True

    def _collect(self, wav, n, _events) -> int:
        if wav and n > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * n))
        return 0  # continue

    def speak(self, job: dict) -> tuple[np.ndarray, int]:
        if self.lib.espeak_SetVoiceByName(job["voice"].encode()) != 0:
            raise RedsError(f"espeak-ng has no voice {job['voice']}; {INSTALL}")
        for param, key in ((self._RATE, "speed"), (self._VOLUME, "amplitude"), (self._PITCH, "pitch")):
            self.lib.espeak_SetParameter(param, job[key], 0)
        text = job["word"].encode() + b"\0"
        self._chunks.clear()
        if self.lib.espeak_Synth(text, len(text), 0, self._POS_CHARACTER, 0, self._CHARS_AUTO, None, None):
            raise RedsError(f"espeak-ng failed to speak {job['word']!r} with voice {job['voice']}")
        self.lib.espeak_Synchronize()
        return np.frombuffer(b"".join(self._chunks), dtype=np.int16), self.rate


def speak_cli(job: dict) -> tuple[np.ndarray, int]:
    """The same through the espeak-ng program, for systems where the library cannot be loaded."""
    wav = _run(["espeak-ng", "-v", job["voice"], "-p", str(job["pitch"]), "-s", str(job["speed"]),
                "-a", str(job["amplitude"]), "--stdout", job["word"]])
    with wave.open(io.BytesIO(wav)) as w:  # streamed header: the declared length is bogus
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    """int16 at `rate` -> int16 at 16 kHz, band-limited by FFT (espeak-ng speaks at 22050 Hz).

    The input is zero-padded to block * 2^k samples, block = rate / gcd(rate, 16000), so both
    FFT lengths are exact and have only small prime factors (fast). The clip ends in silence,
    so the padding and the FFT's circular edges do no harm; the result is cut back to length.
    """
    if rate == RATE or x.size == 0:
        return x
    g = math.gcd(rate, RATE)
    block_in, block_out = rate // g, RATE // g
    blocks = 1 << max(0, math.ceil(math.log2(len(x) / block_in)))
    spectrum = np.fft.rfft(x.astype(np.float64), blocks * block_in)[: blocks * block_out // 2 + 1]
    y = np.fft.irfft(spectrum, blocks * block_out) * (block_out / block_in)
    y = y[: int(round(len(x) * RATE / rate))]
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


_engine: LibEspeak | None = None


def _init_engine() -> None:
    global _engine
    if _engine is not None:
        return
    try:
        _engine = LibEspeak()
    except OSError:
        _engine = None  # synthesize() falls back to the espeak-ng program


def engine() -> LibEspeak | None:
    """This process's one espeak-ng engine (None: speak through the espeak-ng program). Never
    make a second LibEspeak: the library keeps one synth callback per process, and a second
    instance's callback, once collected, would be called by the first one's next word."""
    _init_engine()
    return _engine


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (and clean up)
    _init_engine()


def synthesize(job: dict, root: str) -> float:
    """Make one utterance file under `root`; return the seconds of speech it holds."""
    speech, rate = _engine.speak(job) if _engine is not None else speak_cli(job)
    if speech.size == 0:
        raise RedsError(f"espeak-ng produced no audio for {job['word']!r} with voice {job['voice']}")
    speech = _trim(resample(speech, rate))
    _write_wav(Path(root) / job["path"], _place(speech, job["place"]))
    return len(speech) / RATE


def _make_noise(root: Path) -> None:
    (root / NOISE_DIR).mkdir()
    for name, effects in NOISES.items():
        # -R: repeatable (fixed) random generator, so the noise is identical on every run.
        _run(["sox", "-R", "-q", "-n", "-r", str(RATE), "-c", "1", "-b", "16",
              str(root / NOISE_DIR / name), *effects])


def _existing(out: Path, per_word: int, seed: int, words: list[str]) -> dict | None:
    """The manifest of a complete data set already in `out`, or None if `out` is absent/empty."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        raise RedsError(f"{out} exists and is not an empty folder;"
                        " pass a new or empty folder to --out") from None
    found = manifest.get("words", WORDS)
    if (manifest.get("per_word"), manifest.get("seed"), found) != (per_word, seed, words):
        have = "" if found == words else f", words={','.join(map(str, found))}"
        want = "" if found == words else f", words={','.join(words)}"
        raise RedsError(f"{out} already holds a complete synth-kws data set (per_word="
                        f"{manifest.get('per_word')}, seed={manifest.get('seed')}{have}); use it with --data-dir"
                        f" {out}, or pass another --out to make one with per_word={per_word}, seed={seed}{want}")
    return manifest


@contextlib.contextmanager
def _sigterm_exits():
    """While generating, turn SIGTERM (kill, CI timeouts) into SystemExit so that the partial
    folder is removed, as it is for Ctrl-C. Signal handlers can only be set in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def generate(out_dir: str | os.PathLike, per_word: int = 120, seed: int = 0, jobs: int | None = None,
             progress: bool = True, words: str | list[str] | None = None) -> dict:
    """Write a synth-kws data set to `out_dir` and return a summary.

    per_word: utterances of each keyword (each unknown word gets per_word // 3); jobs:
    worker processes (default: all CPUs). words: the keywords to speak (any words espeak-ng
    can say; default REDS's ten); the unknown words are UNKNOWN_WORDS less those keywords,
    and the manifest records both, so `--dataset synth-kws` reads them back. If `out_dir` already holds a
    complete set with the same per_word and seed, nothing is written and the summary says
    created=False; a different complete set, or any other non-empty folder, is a RedsError.
    """
    if per_word < 1:
        raise RedsError(f"per_word must be at least 1, got {per_word}")
    if jobs is not None and jobs < 1:
        raise RedsError(f"jobs must be at least 1, got {jobs}")
    keywords, unknown = vocabulary(parse_words(words))
    _tools()
    out = Path(out_dir).expanduser().absolute()
    manifest = _existing(out, per_word, seed, keywords)
    if manifest is not None:
        return {"out_dir": str(out), "created": False, "utterances": manifest["utterances"],
                "splits": manifest["splits"], "message": f"{out} already holds this synth-kws data set"}

    voices = speakers()
    work, split_of = plan(per_word, seed, voices, keywords)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    t0 = time.perf_counter()
    try:
        with _sigterm_exits():
            for word in keywords + unknown:
                (tmp / word).mkdir()
            _make_noise(tmp)
            speech = _synthesize_all(work, tmp, jobs or os.cpu_count() or 1, progress)
            elapsed = time.perf_counter() - t0
            summary = _finish(tmp, work, split_of, voices, per_word, seed, speech, keywords, unknown)
            os.chmod(tmp, 0o755)  # mkdtemp made it private
            if out.exists():
                out.rmdir()  # empty (checked above); rename cannot replace a folder portably
            os.rename(tmp, out)
    except BaseException:  # Ctrl-C, kill, or an error: leave nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out_dir": str(out), "created": True, **summary, "seconds": round(elapsed, 2),
            "utterances_per_s": round(len(work) / elapsed, 1)}


def _finish(root: Path, work: list[dict], split_of: dict[str, str], voices: list[str], per_word: int,
            seed: int, speech: list[float], keywords: list[str], unknown: list[str]) -> dict:
    """Write the split lists and, last, the manifest that marks the set complete."""
    lists = {"train": [], "val": [], "test": []}
    for job in work:
        lists[split_of[job["speaker"]]].append(job["path"])
    (root / "validation_list.txt").write_text("".join(p + "\n" for p in sorted(lists["val"])))
    (root / "testing_list.txt").write_text("".join(p + "\n" for p in sorted(lists["test"])))
    summary = {"utterances": len(work), "splits": {k: len(v) for k, v in lists.items()},
               "speakers": len(split_of), "voices_available": len(voices),
               "mean_speech_s": round(float(np.mean(speech)), 3)}
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    manifest = {"generator": "reds synth-kws", "per_word": per_word, "seed": seed,
                "espeak_ng": version.split("Data at")[0].strip(),  # not the install path
                "words": keywords, "unknown_words": unknown, **summary,
                "speaker_voices": {h: v for v in voices if (h := speaker_hash(v)) in split_of}}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return summary


def _synthesize_all(work: list[dict], root: Path, jobs: int, progress: bool) -> list[float]:
    """Run `synthesize` over `work` on `jobs` worker processes (in this process if jobs == 1)."""
    task = functools.partial(synthesize, root=str(root))
    bar = {"total": len(work), "desc": "synth-kws", "unit": "utt", "file": sys.stderr,
           "disable": None if progress else True}
    if jobs == 1:
        _init_engine()
        return list(tqdm(map(task, work), **bar))
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker)
    try:
        return list(tqdm(pool.map(task, work, chunksize=16), **bar))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
