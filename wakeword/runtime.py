"""The streaming detector: numpy + onnxruntime, no torch. What `detect`, `score`, `eval` and `listen` run.

    PCM chunks (any size, int16 or float32)
      -> FrameStream (wakeword.frontend: the training front end)      8 mel frames per 80 ms
      -> bottom.onnx, once per chunk for every wake word sharing it      2 split positions
      -> top.onnx per wake word                                          1 score per 80 ms
      -> decision: optional moving average, threshold, refractory        Detection

Every graph starts from the state silence leaves (by running silence through it), the same state
the offline scorer assumes, so a file scored here equals the training code's scores step by step.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from wakeword import FEATURE_VERSION
from wakeword.audio import SAMPLE_RATE
from wakeword.errors import AudioError, ModelError
from wakeword.frontend import CHUNK_SAMPLES, FEATURE_OFFSET, FEATURE_SCALE, FLOOR_DB, N_MELS, FrameStream

log = logging.getLogger(__name__)

CARD = "card.json"
BOTTOM, TOP = "bottom.onnx", "top.onnx"
WARMUP_STEPS = 24  # silence steps that bring every cache to its silence state (receptive fields are shorter)
SILENCE_FRAME = FLOOR_DB * FEATURE_SCALE + FEATURE_OFFSET
DEFAULT_REFRACTORY_S = 2.0
STEP_S = CHUNK_SAMPLES / SAMPLE_RATE


@dataclass
class Detection:
    phrase: str
    score: float
    end_s: float  # end of the 80 ms step whose score crossed the threshold
    start_s: float  # estimated: end minus the phrase's typical duration (from the card)
    model: str = ""

    def as_dict(self) -> dict:
        return {
            "phrase": self.phrase,
            "start": round(self.start_s, 3),
            "end": round(self.end_s, 3),
            "score": round(self.score, 4),
            "model": self.model,
        }


def pick_providers(providers: str | list[str] = "auto") -> list[str]:
    """'auto': CUDA when onnxruntime-gpu is installed and sees a GPU, else CPU. A list is used as given."""
    if providers == "auto":
        available = ort.get_available_providers()
        return (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if "CUDAExecutionProvider" in available
            else ["CPUExecutionProvider"]
        )
    if isinstance(providers, str):
        providers = [providers]
    return list(providers)


def open_session(path: Path, role: str, providers: list[str]) -> ort.InferenceSession:
    if not path.exists():
        raise ModelError(f"{path}: missing; run 'wakeword export {path.parent}'")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one step is tiny: threads cost more than they give, and the daemon must stay light
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises several types for truncated or foreign files
        raise ModelError(f"{path}: not a loadable ONNX graph ({str(exc).splitlines()[0][:160]})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("wakeword_role") != role:
        raise ModelError(f"{path}: not a wakeword {role} graph (metadata role {meta.get('wakeword_role')!r})")
    if meta.get("feature_version") != str(FEATURE_VERSION):
        raise ModelError(
            f"{path}: made for feature version {meta.get('feature_version')}, this runtime uses "
            f"{FEATURE_VERSION}; re-export or retrain the model"
        )
    return session


@dataclass
class WakeWordModel:
    """One exported model folder: its card and its graphs."""

    path: Path
    card: dict
    bottom_path: Path
    top: ort.InferenceSession
    providers: list[str]

    @property
    def phrase(self) -> str:
        return self.card["phrase"]

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    @staticmethod
    def load(path: str | Path, providers: str | list[str] = "auto", int8: bool = False) -> WakeWordModel:
        path = Path(path)
        if path.is_file() and path.name == CARD:
            path = path.parent
        if not path.is_dir():
            raise ModelError(f"{path}: no such model folder")
        try:
            card = json.loads((path / CARD).read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: no {CARD}; is this a model folder made by 'wakeword train'?") from None
        except ValueError as exc:
            raise ModelError(f"{path / CARD}: unreadable ({exc})") from None
        if card.get("feature_version") != FEATURE_VERSION:
            raise ModelError(
                f"{path}: trained with feature version {card.get('feature_version')}, this runtime "
                f"uses {FEATURE_VERSION}; retrain it"
            )
        for key in ("phrase", "threshold"):
            if key not in card:
                raise ModelError(f"{path / CARD}: no {key!r}; the card is incomplete")
        names = (BOTTOM.replace(".onnx", ".int8.onnx"), TOP.replace(".onnx", ".int8.onnx")) if int8 else (BOTTOM, TOP)
        chosen = pick_providers(providers)
        top = open_session(path / names[1], "top", chosen)
        bottom_path = path / names[0]
        if not bottom_path.exists():
            raise ModelError(f"{bottom_path}: missing; run 'wakeword export {path}'" + (" --int8" if int8 else ""))
        return WakeWordModel(path, card, bottom_path, top, chosen)


class _Bottom:
    """One bottom graph and its caches, shared by the wake words whose bottom.onnx is byte-identical."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.cache_names = [i.name for i in session.get_inputs()][1:]
        self.caches = [np.zeros(shape_of(i), np.float32) for i in session.get_inputs()[1:]]

    def step(self, frames: np.ndarray) -> np.ndarray:
        outputs = self.session.run(
            None, {"frames": frames[None], **dict(zip(self.cache_names, self.caches, strict=True))}
        )
        self.caches = outputs[1:]
        return outputs[0]


class _Top:
    def __init__(self, model: WakeWordModel) -> None:
        self.model = model
        self.names = [i.name for i in model.top.get_inputs()][1:]
        self.state = [np.zeros(shape_of(i), np.float32) for i in model.top.get_inputs()[1:]]

    def step(self, acts: np.ndarray) -> float:
        outputs = self.model.top.run(None, {"acts": acts, **dict(zip(self.names, self.state, strict=True))})
        self.state = outputs[1:]
        return float(outputs[0].reshape(-1)[0])


def shape_of(node: ort.NodeArg) -> list[int]:
    return [d if isinstance(d, int) else 1 for d in node.shape]


@dataclass
class _Decision:
    threshold: float
    smoothing: int
    refractory_steps: int
    recent: deque = field(default_factory=deque)
    last_event: int = -(10**9)
    above: bool = False

    def update(self, step: int, score: float) -> float | None:
        """The (smoothed) score if this step starts an event, else None."""
        self.recent.append(score)
        while len(self.recent) > self.smoothing:
            self.recent.popleft()
        value = sum(self.recent) / len(self.recent)
        rising = value >= self.threshold and not self.above
        self.above = value >= self.threshold
        if rising and step - self.last_event >= self.refractory_steps:
            self.last_event = step
            return value
        return None


class Detector:
    """Streams PCM through every wake word. process(chunk) -> the detections that chunk completed."""

    def __init__(
        self,
        models: list[str | Path | WakeWordModel],
        providers: str | list[str] = "auto",
        threshold: float | None = None,
        smoothing: int | None = None,
        refractory_s: float | None = None,
        int8: bool = False,
    ) -> None:
        if not models:
            raise ModelError("no model given")
        self.models = [m if isinstance(m, WakeWordModel) else WakeWordModel.load(m, providers, int8) for m in models]
        bottoms: dict[bytes, _Bottom] = {}
        self._bottom_of: list[_Bottom] = []
        for m in self.models:  # wake words with the same bottom graph share one run of it per chunk
            key = m.bottom_path.read_bytes()
            if key not in bottoms:
                bottoms[key] = _Bottom(open_session(m.bottom_path, "bottom", m.providers))
            self._bottom_of.append(bottoms[key])
        self._bottoms = list(bottoms.values())
        self._tops = [_Top(m) for m in self.models]
        self._decisions = []
        for m in self.models:
            decision = m.card.get("decision", {})
            self._decisions.append(
                _Decision(
                    threshold if threshold is not None else m.threshold,
                    smoothing if smoothing is not None else int(decision.get("smoothing", 1)),
                    round(
                        (
                            refractory_s
                            if refractory_s is not None
                            else decision.get("refractory_s", DEFAULT_REFRACTORY_S)
                        )
                        / STEP_S
                    ),
                )
            )
        self._frames = FrameStream()
        self._pending = np.zeros(0, np.float32)
        self.steps = 0
        self._warm_up()

    def _warm_up(self) -> None:
        silence = np.full((8, N_MELS), SILENCE_FRAME, np.float32)
        for _ in range(WARMUP_STEPS):
            acts = {id(b): b.step(silence) for b in self._bottoms}
            for top, bottom in zip(self._tops, self._bottom_of, strict=True):
                top.step(acts[id(bottom)])

    def reset(self) -> None:
        """Forget the audio heard so far (as after a gap in the stream): silence state, no pending samples."""
        for bottom in self._bottoms:
            bottom.caches = [np.zeros_like(c) for c in bottom.caches]
        for top in self._tops:
            top.state = [np.zeros_like(s) for s in top.state]
        for decision in self._decisions:
            decision.recent.clear()
            decision.above, decision.last_event = False, -(10**9)
        self._frames = FrameStream()
        self._pending = np.zeros(0, np.float32)
        self.steps = 0
        self._warm_up()

    @staticmethod
    def as_float(chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk)
        if chunk.ndim == 2 and chunk.shape[1] == 1:
            chunk = chunk[:, 0]
        if chunk.ndim != 1:
            raise AudioError(f"chunk must be mono (n,) samples, got shape {chunk.shape}")
        if chunk.dtype == np.int16:
            return chunk.astype(np.float32) / 32768.0
        if chunk.dtype in (np.float32, np.float64):
            if not np.all(np.isfinite(chunk)):
                raise AudioError("chunk contains NaN or infinite samples")
            return chunk.astype(np.float32)
        raise AudioError(f"chunk dtype {chunk.dtype} not supported: use int16 or float32 PCM at 16 kHz")

    def process_scores(self, chunk: np.ndarray) -> tuple[list[Detection], np.ndarray]:
        """Detections and the raw score of every completed 80 ms step: (steps, models)."""
        audio = np.concatenate([self._pending, self.as_float(chunk)])
        whole = len(audio) // CHUNK_SAMPLES * CHUNK_SAMPLES
        self._pending = audio[whole:]
        detections, rows = [], []
        for start in range(0, whole, CHUNK_SAMPLES):
            frames = self._frames.push(audio[start : start + CHUNK_SAMPLES])
            acts = {id(b): b.step(frames) for b in self._bottoms}
            row = []
            for top, bottom, decision, model in zip(
                self._tops, self._bottom_of, self._decisions, self.models, strict=True
            ):
                score = top.step(acts[id(bottom)])
                row.append(score)
                fired = decision.update(self.steps, score)
                if fired is not None:
                    end = (self.steps + 1) * STEP_S
                    duration = float(model.card.get("phrase_seconds", 0.8))
                    detections.append(Detection(model.phrase, fired, end, max(0.0, end - duration), str(model.path)))
            rows.append(row)
            self.steps += 1
        return detections, np.array(rows, np.float32).reshape(-1, len(self.models))

    def process(self, chunk: np.ndarray) -> list[Detection]:
        return self.process_scores(chunk)[0]


def run_bottom_steps(model: WakeWordModel, audio: np.ndarray) -> tuple[list[dict], list[dict]]:
    """The feeds the bottom and top graphs receive while `audio` streams (for int8 calibration)."""
    detector = Detector([model])
    bottom, top = detector._bottoms[0], detector._tops[0]
    frames_stream = FrameStream()
    bottom_feeds, top_feeds = [], []
    for start in range(0, len(audio) - CHUNK_SAMPLES + 1, CHUNK_SAMPLES):
        frames = frames_stream.push(audio[start : start + CHUNK_SAMPLES])
        bottom_feeds.append({"frames": frames[None], **dict(zip(bottom.cache_names, bottom.caches, strict=True))})
        acts = bottom.step(frames)
        top_feeds.append({"acts": acts, **dict(zip(top.names, top.state, strict=True))})
        top.step(acts)
    return bottom_feeds, top_feeds
