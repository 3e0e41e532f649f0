"""The encoder and a wake word in streaming form: one 80 ms step at a time, state in, state out.

openWakeWord recomputes the encoder over the whole 76-frame window every 80 ms. But the encoder's
time strides (2*1*2*1*2 = 8) equal the 8-frame hop, so each layer's output for a step is its output
for the previous steps plus a fixed number of new positions, and a time convolution (3 taps, no
padding) only needs the last 2 positions of its input from before. Caching those gives exactly the
windowed embeddings for a fraction of the work:

    StreamingBottom  8 new mel frames + caches -> 2 new split positions (shared by every wake word)
    StreamingTop     2 new split positions + caches -> 1 new embedding -> score over the last 16

Every cache starts as what silence produces, which is exactly the state of the offline computation
(wakeword.model.score_audio) on a stream that starts with silence, so the two agree step by step.
These modules exist to be exported to ONNX (wakeword.export); the runtime runs the graphs.
"""

from __future__ import annotations

import torch
from torch import nn

from wakeword.encoder import TOP_LAYERS, ConvAct, SpeechEmbedding
from wakeword.frontend import EMBEDDING_HOP_FRAMES, FEATURE_OFFSET, FEATURE_SCALE, FLOOR_DB, N_MELS, WINDOW_FRAMES
from wakeword.model import HEAD_STEPS, WakeWordNet

SILENCE = FLOOR_DB * FEATURE_SCALE + FEATURE_OFFSET  # the feature value of digital silence


def is_time_conv(layer: nn.Module) -> bool:
    conv = layer.conv if isinstance(layer, ConvAct) else layer
    return isinstance(conv, nn.Conv2d) and conv.kernel_size[0] == 3


def run_cached(layers: list[nn.Module], x: torch.Tensor, caches: list[torch.Tensor]) -> tuple[torch.Tensor, list]:
    """Run layers on new positions x; each time convolution prepends its 2 cached input positions."""
    new_caches, i = [], 0
    for layer in layers:
        if is_time_conv(layer):
            x = torch.cat([caches[i], x], dim=2)
            new_caches.append(x[:, :, -2:])
            i += 1
        x = layer(x)
    return x, new_caches


def bottom_layers(encoder: SpeechEmbedding) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for block in encoder.blocks[:-1]:
        layers += [*block.layers, block.pool]
    layers += list(encoder.blocks[-1].layers[:-TOP_LAYERS])
    return layers


@torch.no_grad()
def silence_caches(layers: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """Each time convolution's input on a long stretch of silence (x: silence at the first layer's input)."""
    caches = []
    for layer in layers:
        if is_time_conv(layer):
            caches.append(x[:, :, -2:].clone())
        x = layer(x)
    return caches


class StreamingBottom(nn.Module):
    """forward(frames (1, 8, 32), *caches) -> (split activations (1, 96, 2, 2), *new caches)."""

    def __init__(self, encoder: SpeechEmbedding) -> None:
        super().__init__()
        self.layers = nn.ModuleList(bottom_layers(encoder))

    def initial_state(self) -> list[torch.Tensor]:
        dtype = next(self.parameters()).dtype
        silence = torch.full((1, 1, WINDOW_FRAMES, N_MELS), SILENCE, dtype=dtype)
        return silence_caches(list(self.layers), silence)

    def forward(self, frames: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        acts, new = run_cached(list(self.layers), frames.unsqueeze(1), list(caches))
        return (acts, *new)


class StreamingTop(nn.Module):
    """forward(split activations (1, 96, 2, 2), *caches, embeddings (1, 15, 96))
    -> (score (1,), *new caches, embeddings)."""

    def __init__(self, net: WakeWordNet) -> None:
        super().__init__()
        self.layers = nn.ModuleList([*net.top.layers, net.top.pool])
        self.out = net.top.out
        self.head = net.head

    def initial_state(self, bottom: StreamingBottom) -> list[torch.Tensor]:
        """Caches and the last 15 embeddings as silence leaves them."""
        with torch.no_grad():
            dtype = next(self.parameters()).dtype
            silence = torch.full((1, 1, WINDOW_FRAMES + EMBEDDING_HOP_FRAMES * 20, N_MELS), SILENCE, dtype=dtype)
            acts = silence
            for layer in bottom.layers:
                acts = layer(acts)
            caches = silence_caches([*self.layers, self.out], acts)
            x = self.out(nn.Sequential(*self.layers)(acts))  # (1, 96, steps, 1)
            embeddings = x.squeeze(-1).transpose(1, 2)[:, -(HEAD_STEPS - 1) :]
        return [*caches, embeddings.contiguous()]

    def forward(self, acts: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *caches, history = state
        x, new_caches = run_cached([*self.layers, self.out], acts, list(caches))
        embedding = x.squeeze(-1).transpose(1, 2)  # (1, 1, 96)
        window = torch.cat([history, embedding], dim=1)  # (1, 16, 96)
        score = torch.sigmoid(self.head(window))
        return (score, *new_caches, window[:, 1:])
