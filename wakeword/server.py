"""Many streams of one wake word at once, the server use case: numpy + onnxruntime, no torch.

    chunks (B, 1280) int16 or float32, one 80 ms chunk per stream
      -> server.onnx (wakeword.export.export_server): mel front end, bottom and top  scores (B,)
         for all B streams in one run; each stream's state stays on the device
      -> decision per stream: threshold, optional moving average, refractory           detections

The single-stream Detector (wakeword.runtime) runs the numpy front end and one graph run per chunk:
right for a microphone, but a server with a GPU and thousands of streams would spend its time in
Python and in per-run overhead. Here one run serves every stream, the front end is in the graph, and
on CUDA the states never leave the GPU (IOBinding): per step only the audio goes up and B scores
come back. Streams are independent and equal the single-stream detector step by step (to float32
rounding: the graph's front end sums in float32, see tests/test_server.py). tools/bench_server.py
measures it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from wakeword.errors import AudioError, ModelError
from wakeword.frontend import CHUNK_SAMPLES
from wakeword.runtime import (
    DEFAULT_REFRACTORY_S,
    MAX_SETTLE_STEPS,
    STEP_S,
    WakeWordModel,
    check_metadata,
    new_session,
    pick_providers,
    read_graph_info,
)

log = logging.getLogger(__name__)

SERVER = "server.onnx"  # the name wakeword.export.export_server writes


def open_server_graph(model_dir: Path, providers: list[str], threads: int) -> ort.InferenceSession:
    path = model_dir / SERVER
    if not path.exists():
        raise ModelError(f"{path}: missing; run 'wakeword export {model_dir} --server'")
    data = path.read_bytes()
    try:
        meta, _ = read_graph_info(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a loadable ONNX graph ({exc})") from None
    check_metadata(path, "server", meta)
    session = new_session(data, providers, str(path), threads)
    names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    if names != (["audio", "state"], ["scores", "state_out"]):
        raise ModelError(f"{path}: graph inputs/outputs {names}; re-export it with 'wakeword export --server'")
    return session


class BatchDetector:
    """B streams of one wake word. process(chunks (B, 1280)) -> (scores (B,), [(stream, score), ...]).

    A detection is (stream index, score) for each stream whose score crossed the threshold at this
    step, at least `refractory_s` after that stream's previous one, as in the single-stream Detector.
    `threads`: onnxruntime's threads on a CPU (one graph run serves every stream, so more help there).
    """

    def __init__(
        self,
        model: str | Path,
        streams: int,
        providers: str | list[str] = "auto",
        threshold: float | None = None,
        smoothing: int | None = None,
        refractory_s: float | None = None,
        threads: int = 1,
    ) -> None:
        if streams < 1:
            raise ValueError(f"streams must be 1 or more, not {streams}")
        loaded = WakeWordModel.load(model, providers=["CPUExecutionProvider"])  # checks the card and versions
        card = loaded.card
        self.model_dir = Path(model)
        self.phrase = card["phrase"]
        if card.get("input_adaptation"):
            log.warning("%s: the card's microphone adaptation is not applied to server streams", self.model_dir)
        decision = card.get("decision", {})
        self.threshold = float(card["threshold"] if threshold is None else threshold)
        self.smoothing = int(loaded.smoothing if smoothing is None else smoothing)
        refractory = decision.get("refractory_s", DEFAULT_REFRACTORY_S) if refractory_s is None else refractory_s
        self.refractory_steps = round(refractory / STEP_S)
        self.streams = streams
        self.session = open_server_graph(self.model_dir, pick_providers(providers), threads)
        on_gpu = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self.device = "cuda" if on_gpu else "cpu"
        log.info("%s: %d streams on %s", self.model_dir, streams, self.session.get_providers()[0])
        self.silence = self._silence_state()
        self._binding = self.session.io_binding()
        self._states = [self._device_array(np.repeat(self.silence, streams, axis=0)), self._device_array(None)]
        self.steps = 0
        self._recent = np.zeros((streams, self.smoothing), np.float32)  # the last scores, for smoothing
        self._heard = np.zeros(streams, np.int64)  # steps each stream has heard since its last reset
        self._above = np.zeros(streams, bool)
        self._last_event = np.full(streams, -(10**9), np.int64)

    def _device_array(self, values: np.ndarray | None) -> ort.OrtValue:
        """A (B, S) state buffer on the session's device, holding `values` if given. Allocated by
        onnxruntime and filled by copy: an OrtValue made from a numpy array would point into it."""
        array = ort.OrtValue.ortvalue_from_shape_and_type(
            (self.streams, self.silence.shape[1]), np.float32, self.device
        )
        if values is not None:
            array.update_inplace(np.ascontiguousarray(values, np.float32))
        return array

    def _silence_state(self) -> np.ndarray:
        """(1, S): one stream's state after a long silence, found by running silence until it stops changing."""
        state = np.zeros((1, self.session.get_inputs()[1].shape[1]), np.float32)
        quiet = np.zeros((1, CHUNK_SAMPLES), np.float32)
        for _ in range(MAX_SETTLE_STEPS):
            new = self.session.run(["state_out"], {"audio": quiet, "state": state})[0]
            if np.array_equal(new, state):
                break
            state = new
        else:
            log.warning("%s: the state did not settle on silence in %d steps", self.model_dir, MAX_SETTLE_STEPS)
        return state

    def reset(self, stream: int | None = None) -> None:
        """Forget what one stream (or every stream) heard: silence state, no pending decision."""
        which = slice(None) if stream is None else slice(stream, stream + 1)
        states = self._states[0].numpy().copy()
        states[which] = self.silence
        self._states[0].update_inplace(states)
        self._recent[which] = 0.0
        self._heard[which] = 0
        self._above[which] = False
        self._last_event[which] = -(10**9)

    def as_chunks(self, chunks: np.ndarray) -> np.ndarray:
        chunks = np.asarray(chunks)
        if chunks.shape != (self.streams, CHUNK_SAMPLES):
            raise AudioError(f"chunks must be ({self.streams}, {CHUNK_SAMPLES}) samples, got shape {chunks.shape}")
        if chunks.dtype == np.int16:
            return np.multiply(chunks, np.float32(1 / 32768), dtype=np.float32)  # one pass; exact (a power of 2)
        if chunks.dtype not in (np.float32, np.float64):
            raise AudioError(f"chunk dtype {chunks.dtype} not supported: use int16 or float32 PCM at 16 kHz")
        if not np.isfinite(chunks).all():
            raise AudioError("chunks contain NaN or infinite samples")
        return np.ascontiguousarray(chunks, np.float32)

    def process(self, chunks: np.ndarray) -> tuple[np.ndarray, list[tuple[int, float]]]:
        """One 80 ms step of every stream: its raw scores (B,) and the detections it started."""
        binding, (state, new_state) = self._binding, self._states
        binding.bind_cpu_input("audio", self.as_chunks(chunks))
        binding.bind_ortvalue_input("state", state)
        binding.bind_output("scores", "cpu")  # outputs come back in the order they were bound
        binding.bind_ortvalue_output("state_out", new_state)
        self.session.run_with_iobinding(binding)
        scores = binding.get_outputs()[0].numpy()
        self._states = [new_state, state]  # the old state's buffer takes the next step's output
        detections = self._decide(scores)
        self.steps += 1
        return scores, detections

    def _decide(self, scores: np.ndarray) -> list[tuple[int, float]]:
        if self.smoothing > 1:
            self._recent[:, self.steps % self.smoothing] = scores
            scores = self._recent.sum(axis=1) / np.minimum(self._heard + 1, self.smoothing)
        above = scores >= self.threshold
        fired = above & ~self._above & (self.steps - self._last_event >= self.refractory_steps)
        self._above = above
        self._last_event[fired] = self.steps
        self._heard += 1
        return [(int(i), float(scores[i])) for i in np.flatnonzero(fired)]
