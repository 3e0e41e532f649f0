"""Parity of our front end and encoder port against the reference models, on real audio.

    python tools/parity_report.py [--out docs/]

Clips: tools/shared_data.parity_clips() (124 speech clips from 65 speakers/contributors + 15 noise
files, from ../shared/data). References run in their own runtimes: the ONNX pair in onnxruntime and
the TFLite pair in the TFLite C library (tools/reference_models.py). Comparisons:

  mel        our log_mel (reference clamp)       vs each reference's mel graph
  encoder    our encoder on the reference's mel  vs each reference's embedding graph
  pipeline   our front end + encoder             vs each reference pipeline, end to end
  onnx/tflite the two references against each other (mel and embeddings)
  floor      our streaming-safe floor             vs the reference's whole-buffer clamp (both ours)

Writes parity.md and parity.json into --out and the headline figures into the encoder card.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import reference_models as ref  # noqa: E402
from tools import shared_data  # noqa: E402
from wakeword import frontend  # noqa: E402
from wakeword.audio import load_audio  # noqa: E402
from wakeword.encoder import CARD_FILE, MODELS_DIR, TorchEncoder  # noqa: E402

NOISE_SECONDS = 20.0  # noise files are long and uniform: their first 20 s are enough
SPEECH_RANGE_DB = 30.0  # a window is "speech" if a frame in it is within 30 dB of the clip's loudest


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-12)


def speech_windows(features: np.ndarray) -> np.ndarray:
    """Boolean per embedding window: does it hold a frame near the clip's loudest?"""
    loudness = features.mean(axis=1)  # feature units are dB/10
    loud = loudness >= loudness.max() - SPEECH_RANGE_DB * frontend.FEATURE_SCALE
    n = frontend.num_embeddings(len(features))
    return np.array([loud[i * 8 : i * 8 + 76].any() for i in range(n)])


class Stat:
    """Collects max |diff| and cosines of one comparison over all clips."""

    def __init__(self) -> None:
        self.max_abs, self.cosines = 0.0, []

    def add(self, ours: np.ndarray, theirs: np.ndarray, mask: np.ndarray | None = None) -> None:
        if mask is not None:
            ours, theirs = ours[mask], theirs[mask]
        if len(ours) == 0:
            return
        self.max_abs = max(self.max_abs, float(np.abs(ours - theirs).max()))
        self.cosines.append(cosine(ours, theirs))

    def summary(self) -> dict[str, float]:
        c = np.concatenate(self.cosines)
        return {"max_abs": self.max_abs, "cosine_mean": float(c.mean()), "cosine_min": float(c.min()), "n": len(c)}


def measure(clips: list[shared_data.Clip]) -> dict:
    """Every comparison of the module docstring, over the given clips."""
    encode = TorchEncoder()
    refs = {"onnx": ref.OnnxReference(), "tflite": ref.TfliteReference()}
    names = [
        "mel_vs_onnx",
        "mel_vs_tflite",
        "mel_onnx_vs_tflite",
        "encoder_vs_onnx",
        "encoder_vs_tflite",
        "encoder_onnx_vs_tflite",
        "pipeline_vs_onnx",
        "pipeline_vs_tflite",
        "floor_vs_reference_clamp_speech",
        "floor_vs_reference_clamp_all",
    ]
    stats = {kind: {n: Stat() for n in names} for kind in ("speech", "noise")}
    speakers: set[str] = set()
    short = 0
    start = time.time()
    for clip in clips:
        audio = load_audio(clip.path)
        kind = "noise" if clip.role == "noise" else "speech"
        if kind == "noise":
            audio = audio[: int(NOISE_SECONDS * frontend.SAMPLE_RATE)]
        else:
            speakers.add(clip.speaker)
        s = stats[kind]
        ours_mel = frontend.log_mel(audio, clamp="reference")
        ref_mel = {k: r.features(audio) for k, r in refs.items()}
        s["mel_vs_onnx"].add(ours_mel, ref_mel["onnx"])
        s["mel_vs_tflite"].add(ours_mel, ref_mel["tflite"])
        s["mel_onnx_vs_tflite"].add(ref_mel["onnx"], ref_mel["tflite"])
        if frontend.num_embeddings(len(ours_mel)) == 0:
            short += 1  # under 775 ms + 20 ms: no full window to embed
            continue
        ref_emb = {k: r.embed_windows(ref.windows(ref_mel[k])) for k, r in refs.items()}
        s["encoder_vs_onnx"].add(encode(ref_mel["onnx"]), ref_emb["onnx"])
        s["encoder_vs_tflite"].add(encode(ref_mel["tflite"]), ref_emb["tflite"])
        tflite_on_onnx_mel = refs["tflite"].embed_windows(ref.windows(ref_mel["onnx"]))
        s["encoder_onnx_vs_tflite"].add(ref_emb["onnx"], tflite_on_onnx_mel)
        ours_emb = encode(ours_mel)
        s["pipeline_vs_onnx"].add(ours_emb, ref_emb["onnx"])
        s["pipeline_vs_tflite"].add(ours_emb, ref_emb["tflite"])
        floor_emb = encode(frontend.log_mel(audio))
        s["floor_vs_reference_clamp_all"].add(floor_emb, ours_emb)
        s["floor_vs_reference_clamp_speech"].add(floor_emb, ours_emb, speech_windows(ours_mel))
    return {
        "clips": {"speech": sum(c.role != "noise" for c in clips), "noise": sum(c.role == "noise" for c in clips)},
        "speakers_or_contributors": len(speakers),
        "clips_too_short_to_embed": short,
        "floor_db": frontend.FLOOR_DB,
        "seconds": round(time.time() - start, 1),
        "figures": {kind: {n: st.summary() for n, st in per.items() if st.cosines} for kind, per in stats.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--no-card", action="store_true", help="do not write figures into the encoder card")
    args = parser.parse_args()
    if not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    results = measure(shared_data.parity_clips())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "parity.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "parity.md").write_text(markdown(results))
    if not args.no_card:
        card_path = MODELS_DIR / CARD_FILE
        card = json.loads(card_path.read_text())
        sp = results["figures"]["speech"]
        card["parity"] = {
            "command": "python tools/parity_report.py",
            "clips": results["clips"],
            "embedding_vs_onnx": sp["pipeline_vs_onnx"],
            "embedding_vs_tflite": sp["pipeline_vs_tflite"],
            "mel_vs_onnx": sp["mel_vs_onnx"],
            "onnx_vs_tflite_embedding": sp["encoder_onnx_vs_tflite"],
            "streaming_floor_vs_reference_clamp_speech": sp["floor_vs_reference_clamp_speech"],
        }
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(markdown(results))


def markdown(results: dict) -> str:
    lines = [
        "# Parity of the ported front end and encoder",
        "",
        "Produced by `python tools/parity_report.py` "
        f"on {results['clips']['speech']} speech clips ({results['speakers_or_contributors']} speakers or "
        f"contributors) and {results['clips']['noise']} noise files from `../shared/data`. "
        "Embeddings are compared per 80 ms window, mel features per 10 ms frame.",
        "",
        "| comparison | audio | max abs diff | mean cosine | worst cosine | n |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, per in results["figures"].items():
        for name, f in per.items():
            lines.append(
                f"| {name} | {kind} | {f['max_abs']:.2e} | {f['cosine_mean']:.6f} | {f['cosine_min']:.6f} | {f['n']} |"
            )
    lines += [
        "",
        f"`floor_*` compares our streaming-safe rule (every cell clamped at {results['floor_db']:g} dB) with the "
        "reference rule (clamped at 80 dB below the maximum of the whole buffer), both through our encoder; "
        "`_speech` keeps windows holding a frame within 30 dB of the clip's loudest.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
