"""The per-wake-word network: the encoder's fine-tuned top, then a temporal head over 16 embeddings.

    split activations (batch, 96, 38, 2)  ->  EncoderTop  ->  (batch, 16, 96) embeddings  ->  head  ->  logit

A 'full' model (every encoder layer fine-tuned) also carries its own bottom, the part below the split
that every other wake word shares frozen:

    log-mel (batch, 198, 32)  ->  own bottom  ->  split activations  ->  ...   (forward_features)

16 embeddings are 1.28 s of steps; with the 775 ms each one sees, a score looks at the last 1.98 s.
Three heads: ConvHead, dilated temporal convolutions ending in a position-aware linear layer (the
default); GRUHead, a recurrent baseline; LinearHead, logistic regression on pooled embeddings (the
'features' strategy).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from wakeword.encoder import TOP_HOP, TOP_LAYERS, TOP_WINDOW, EncoderTop, SpeechEmbedding
from wakeword.frontend import (
    CHUNK_SAMPLES,
    CONTEXT_SAMPLES,
    EMBEDDING_DIM,
    HOP_LENGTH,
    N_FFT,
    WINDOW_FRAMES,
    log_mel,
)

HEAD_STEPS = 16
# Audio one example spans: exactly the samples whose 16th embedding ends at the last sample.
SEGMENT_FRAMES = WINDOW_FRAMES + (HEAD_STEPS - 1) * 8
SEGMENT_SAMPLES = (SEGMENT_FRAMES - 1) * HOP_LENGTH + N_FFT  # 31712 samples, 1.98 s
SPLIT_POSITIONS = TOP_WINDOW + (HEAD_STEPS - 1) * TOP_HOP  # 38 activation positions per example
EMBEDDING_SCALE = 0.1  # embeddings reach +-60; the head sees them at a unit-ish scale
HEADS = ("conv", "gru", "linear")


class ConvHead(nn.Module):
    """Dilated convolutions over time (receptive field 15 steps), then a linear layer over the last two
    positions: it knows *where* in the window the phrase is, so it fires when the phrase has just ended."""

    def __init__(self, channels: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(EMBEDDING_DIM, channels, 3),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv1d(channels, channels, 3, dilation=2),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv1d(channels, channels, 3, dilation=4),
            nn.GELU(),
        )
        self.out = nn.Linear(channels * (HEAD_STEPS - 14), 1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = self.convs(embeddings.transpose(1, 2) * EMBEDDING_SCALE)  # (batch, channels, 2)
        return self.out(x.flatten(1)).squeeze(-1)


class GRUHead(nn.Module):
    """A GRU read over the 16 steps; its last state decides."""

    def __init__(self, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.gru = nn.GRU(EMBEDDING_DIM, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(embeddings * EMBEDDING_SCALE)
        return self.out(self.drop(last[-1])).squeeze(-1)


class LinearHead(nn.Module):
    """Logistic regression on the window's embeddings pooled over time (mean and max): the encoder as a
    fixed feature extractor with the simplest classifier on top, the baseline of the 'features' strategy."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(2 * EMBEDDING_DIM, 1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = embeddings * EMBEDDING_SCALE
        return self.out(torch.cat([x.mean(1), x.amax(1)], dim=-1)).squeeze(-1)


def make_head(kind: str) -> nn.Module:
    if kind == "conv":
        return ConvHead()
    if kind == "gru":
        return GRUHead()
    if kind == "linear":
        return LinearHead()
    raise ValueError(f"head must be one of {HEADS}, not {kind!r}")


def bottom_parameters(encoder: SpeechEmbedding) -> list[nn.Parameter]:
    """The encoder's parameters below the split (what forward_bottom runs), in a fixed order."""
    below = [*encoder.blocks[:-1], *encoder.blocks[-1].layers[:-TOP_LAYERS]]
    return [p for module in below for p in module.parameters()]


class WakeWordNet(nn.Module):
    """EncoderTop + head. forward: split activations -> logits; forward_embeddings: head only.

    With own_bottom, a trainable copy of the whole encoder whose layers below the split replace the
    shared pretrained bottom for this wake word (forward_features; score_audio and the export use it).
    Its layers above the split are never run: `top` is this model's top either way.
    """

    def __init__(self, encoder: SpeechEmbedding, head: str = "conv", own_bottom: bool = False) -> None:
        super().__init__()
        self.head_kind = head
        self.top = EncoderTop(encoder)
        self.head = make_head(head)
        self.bottom = copy.deepcopy(encoder) if own_bottom else None

    def forward(self, acts: torch.Tensor) -> torch.Tensor:
        return self.head(self.top(acts)[:, -HEAD_STEPS:])

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 32) log-mel -> logits through this model's own bottom."""
        if self.bottom is None:
            raise ValueError("this model shares the pretrained bottom: pass split activations to forward()")
        return self(self.bottom.forward_bottom(features))

    def forward_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.head(embeddings[:, -HEAD_STEPS:])


# Silence assumed before a stream: enough that step 0 already has 16 embeddings (the runtime starts
# from the same state), so a stream of N samples gets N // 1280 scores, step k ending at 1280 * (k + 1).
STREAM_PREROLL = CONTEXT_SAMPLES + (HEAD_STEPS - 1) * CHUNK_SAMPLES


@torch.no_grad()
def score_audio(net: WakeWordNet, encoder: SpeechEmbedding, audio: np.ndarray, chunk_steps: int = 2048) -> np.ndarray:
    """Scores (probabilities) for every 80 ms step of a whole recording, as the streaming runtime gives them.

    `encoder` gives the bottom unless the model carries its own (a 'full' model): then that one runs, as
    its exported bottom.onnx does."""
    device, dtype = next(net.parameters()).device, next(net.parameters()).dtype
    bottom = net.bottom if net.bottom is not None else encoder
    padded = np.concatenate([np.zeros(STREAM_PREROLL, np.float32), np.asarray(audio, np.float32)])
    steps = len(audio) // CHUNK_SAMPLES
    features = log_mel(padded[: STREAM_PREROLL + steps * CHUNK_SAMPLES])
    scores = []
    # Chunks of steps with their 15-step (plus window) overlap, to bound memory on long streams.
    frames_per_step = 8
    for first in range(0, steps, chunk_steps):
        last = min(steps, first + chunk_steps)
        lo = first * frames_per_step
        hi = lo + SEGMENT_FRAMES + (last - first - 1) * frames_per_step
        x = torch.from_numpy(features[lo:hi]).to(device=device, dtype=dtype)[None]
        emb = net.top(bottom.forward_bottom(x))  # (1, last-first+15, 96)
        windows = emb[0].unfold(0, HEAD_STEPS, 1).permute(0, 2, 1)  # (n, 16, 96)
        scores.append(torch.sigmoid(net.head(windows)).float().cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)
