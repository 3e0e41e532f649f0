"""The encoder and a wake word in streaming form: one 80 ms step at a time, state in, state out.

openWakeWord recomputes the encoder over the whole 76-frame window every 80 ms. But the encoder's
time strides (2*1*2*1*2 = 8) equal the 8-frame hop, so each layer's output for a step is its output
for the previous steps plus a fixed number of new positions, and a time convolution (3 taps, no
padding) only needs the last 2 positions of its input from before. The conv head is the same again
one level up: its dilated convolutions slide over embeddings, so each step adds one position per
layer, and a layer of dilation d needs the last 2*d positions of its input. Caching those gives
exactly the windowed computation for a fraction of the work:

    StreamingBottom  8 new mel frames + state -> 2 new split positions (shared by every wake word)
    StreamingTop     2 new split positions + state -> 1 new embedding -> 1 new position per head
                     layer -> score (the GRU head, which restarts on every window, re-reads the last
                     16 embeddings instead)

Each graph carries all its caches in ONE flat float32 state vector (in and out): onnxruntime charges
about 1.5 us per graph input and output, which for 9 caches cost more than the arithmetic of some
layers. StateLayout says where each cache lives in the vector; it is written into the graphs'
metadata so that tools can read a cache (the last embeddings, for instance) out of a state.

Every cache starts as what silence produces, which is exactly the state of the offline computation
(wakeword.model.score_audio) on a stream that starts with silence, so the two agree step by step.
StreamingBottom and a GRU head's StreamingTop are exported to ONNX as they are (wakeword.export). A
conv head's top.onnx is written by the runtime's conv_top_graph from conv_top_weights (the same
arithmetic laid out so that the tops of many wake words stack into one graph); StreamingTop's conv
path is the torch reference the tests hold it to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from wakeword.encoder import TOP_LAYERS, ConvAct, SpeechEmbedding
from wakeword.frontend import (
    AMIN,
    EMBEDDING_HOP_FRAMES,
    FEATURE_OFFSET,
    FEATURE_SCALE,
    FLOOR_DB,
    HOP_LENGTH,
    INT16_SCALE,
    N_FFT,
    N_MELS,
    WINDOW_FRAMES,
    mel_filterbank,
    stft_basis,
)
from wakeword.model import EMBEDDING_SCALE, HEAD_STEPS, ConvHead, WakeWordNet

SILENCE = FLOOR_DB * FEATURE_SCALE + FEATURE_OFFSET  # the feature value of digital silence
# Silence steps that take every cache from any state to the silence state (the longest chain of
# caches, bottom + top + conv head, spans 25 steps); the runtime checks that the state stopped changing.
SILENCE_STEPS = 32
# Samples a stream keeps between 80 ms steps: the overlap of the chunk's 8 STFT frames with the next chunk's.
TAIL_SAMPLES = N_FFT - HOP_LENGTH  # 352


@dataclass(frozen=True)
class StateLayout:
    """Named tensors packed one after another, flattened, into one float32 vector."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def sizes(self) -> list[int]:
        return [math.prod(s) for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def offset(self, name: str) -> int:
        return sum(self.sizes[: self.names.index(name)])

    def unpack(self, state: torch.Tensor) -> list[torch.Tensor]:
        """(S,) -> the tensors. (B, S), B streams' states -> the tensors with B in place of their leading 1."""
        # One Split node in the graph; the Reshapes are free.
        if state.dim() == 1:
            parts = torch.split(state, self.sizes)
            return [part.reshape(shape) for part, shape in zip(parts, self.shapes, strict=True)]
        parts = torch.split(state, self.sizes, dim=1)
        return [part.reshape(-1, *shape[1:]) for part, shape in zip(parts, self.shapes, strict=True)]

    def pack(self, tensors: list[torch.Tensor], streams: bool = False) -> torch.Tensor:
        """The inverse of unpack: (S,), or (B, S) with streams=True."""
        if streams:
            return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)
        return torch.cat([t.reshape(-1) for t in tensors])

    def as_json(self) -> list[dict]:
        """What export writes into the graph's metadata."""
        return [
            {"name": n, "shape": list(s), "offset": self.offset(n)}
            for n, s in zip(self.names, self.shapes, strict=True)
        ]


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
    """forward(frames (1, 8, 32), state (S,)) -> (split activations (1, 96, 2, 2), new state (S,))."""

    def __init__(self, encoder: SpeechEmbedding) -> None:
        super().__init__()
        self.layers = nn.ModuleList(bottom_layers(encoder))
        shapes = [tuple(c.shape) for c in self.initial_caches()]
        self.layout = StateLayout(tuple(f"cache_{i}" for i in range(len(shapes))), tuple(shapes))

    def initial_caches(self) -> list[torch.Tensor]:
        dtype = next(self.parameters()).dtype
        silence = torch.full((1, 1, WINDOW_FRAMES, N_MELS), SILENCE, dtype=dtype)
        return silence_caches(list(self.layers), silence)

    def initial_state(self) -> torch.Tensor:
        return self.layout.pack(self.initial_caches())

    def forward(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        acts, new = run_cached(list(self.layers), frames.unsqueeze(1), self.layout.unpack(state))
        return acts, self.layout.pack(new)


def head_convs(head: ConvHead) -> list[tuple[nn.Conv1d, nn.Module]]:
    """(convolution, activation) pairs of the conv head; dropout is the identity in eval."""
    layers = list(head.convs)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv1d)]
    return [(layers[i], layers[i + 1]) for i in convs]


def head_history(conv: nn.Conv1d) -> int:
    """Past input positions a convolution needs to make one new output position."""
    return conv.dilation[0] * (conv.kernel_size[0] - 1)


class StreamingTop(nn.Module):
    """forward(split activations (1, 96, 2, 2), state (S,)) -> (score (1,), new state (S,)).

    The state holds the encoder top's two time-convolution caches, then for the conv head the last
    embeddings and each head layer's past outputs (one new position per layer per step), or for
    the GRU head the last 15 embeddings (it re-reads the whole window every step, as in training).
    """

    def __init__(self, net: WakeWordNet) -> None:
        super().__init__()
        self.layers = nn.ModuleList([*net.top.layers, net.top.pool])
        self.out = net.top.out
        self.head = net.head
        self.streaming_head = isinstance(net.head, ConvHead)
        dtype = next(self.parameters()).dtype
        named = self._initial_named(torch.zeros(1, 96, 2 * SILENCE_STEPS, 2, dtype=dtype))  # for the shapes
        self.layout = StateLayout(tuple(n for n, _ in named), tuple(tuple(t.shape) for _, t in named))

    @torch.no_grad()
    def _initial_named(self, acts: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Every cache as a long run of split activations `acts` leaves it, named."""
        caches = silence_caches([*self.layers, self.out], acts)
        embeddings = self.out(nn.Sequential(*self.layers)(acts)).squeeze(-1)  # (1, 96, steps)
        named = [("top_cache_0", caches[0]), ("top_cache_1", caches[1])]
        if not self.streaming_head:
            return [*named, ("embeddings", embeddings.transpose(1, 2)[:, -(HEAD_STEPS - 1) :].contiguous())]
        x = embeddings
        for i, (conv, act) in enumerate(head_convs(self.head)):
            keep = head_history(conv)
            named.append(("embeddings" if i == 0 else f"head_{i - 1}", x[:, :, -keep:].contiguous()))
            x = act(conv(x * EMBEDDING_SCALE if i == 0 else x))
        # The output layer reads the last 2 positions of the last convolution: keep the one before.
        keep = self.head.out.in_features // x.shape[1] - 1
        named.append((f"head_{len(head_convs(self.head)) - 1}", x[:, :, -keep:].contiguous()))
        return named

    @torch.no_grad()
    def initial_state(self, bottom: StreamingBottom) -> torch.Tensor:
        """The state a long stretch of silence leaves (the bottom gives the split activations of silence)."""
        dtype = next(self.parameters()).dtype
        frames = WINDOW_FRAMES + EMBEDDING_HOP_FRAMES * (HEAD_STEPS + 20)
        acts = torch.full((1, 1, frames, N_MELS), SILENCE, dtype=dtype)
        for layer in bottom.layers:
            acts = layer(acts)
        return self.layout.pack([t for _, t in self._initial_named(acts)])

    def embed(self, acts: torch.Tensor, caches: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """2 new split positions -> (the new embedding (1, 96, 1), new encoder-top caches)."""
        x, new_caches = run_cached([*self.layers, self.out], acts, caches)
        return x.squeeze(-1), new_caches

    def forward(self, acts: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, new = self.step(acts, self.layout.unpack(state))
        return score, self.layout.pack(new)

    def step(self, acts: torch.Tensor, parts: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """forward on unpacked caches, for any number of streams: (scores (B,), new caches)."""
        embedding, new = self.embed(acts, parts[:2])
        history = parts[2:]
        if not self.streaming_head:
            window = torch.cat([history[0], embedding.transpose(1, 2)], dim=1)  # (1, 16, 96)
            return torch.sigmoid(self.head(window)), [*new, window[:, 1:]]
        x = embedding
        for i, (conv, act) in enumerate(head_convs(self.head)):
            seen = torch.cat([history[i], x], dim=2)  # this layer's input, oldest first
            new.append(seen[:, :, 1:])
            x = act(conv(seen * EMBEDDING_SCALE if i == 0 else seen))  # (1, channels, 1)
        last = torch.cat([history[-1], x], dim=2)
        new.append(last[:, :, 1:])
        return torch.sigmoid(self.head.out(last.flatten(1)).squeeze(-1)), new


@torch.no_grad()
def conv_top_weights(top: StreamingTop) -> dict[str, np.ndarray]:
    """A conv-head wake word's top as wakeword.runtime.conv_top_graph takes it (its CONV_TOP_WEIGHTS).

    The same arithmetic as StreamingTop, laid out for matrix products: the mel convolution on the
    2 mel positions at the split becomes one (mel, channel) -> (mel, channel) matrix (its zero padding
    drops out), each time or head convolution a (tap, channel) -> channel matrix applied to the
    positions it reads, and EMBEDDING_SCALE is folded into the first head layer.
    """
    mel_conv, time_conv = (layer.conv for layer in top.layers[:2])
    channels = mel_conv.out_channels
    mel = torch.zeros(2, channels, 2, channels, dtype=torch.float64)  # (mel in, ch in, mel out, ch out)
    for m_in in range(2):
        for m_out in range(2):
            tap = m_in - m_out + 1  # the 1 x 3 kernel's tap that links them (padding 1)
            mel[m_in, :, m_out, :] = mel_conv.weight[:, :, 0, tap].double().T

    def taps(weight: torch.Tensor) -> np.ndarray:  # (out, in, taps[, 1]) -> (1, taps * in, out)
        w = weight.reshape(weight.shape[0], weight.shape[1], -1).double()
        return w.permute(2, 1, 0).reshape(1, -1, weight.shape[0]).float().numpy()

    def f32(t: torch.Tensor, *shape: int) -> np.ndarray:
        return t.detach().double().reshape(shape).float().numpy()

    (h0, _), (h1, _), (h2, _) = head_convs(top.head)
    time_w = time_conv.weight.double()  # (out, in, 3, 1) -> (out, 3 * in, 1, 1), (tap, channel) order
    lin = top.head.out.weight.reshape(-1, 2).T.reshape(1, -1, 1)  # (channel, position) -> (position, channel)
    return {
        "mel_w": mel.reshape(2 * channels, 2 * channels).float().numpy(),
        "mel_b": f32(mel_conv.bias.repeat(2), -1),
        "time_w": time_w[:, :, :, 0].permute(0, 2, 1).reshape(channels, -1, 1, 1).float().numpy(),
        "time_b": f32(time_conv.bias, -1),
        "out_w": taps(top.out.weight),
        "h0_w": taps(h0.weight.double() * EMBEDDING_SCALE),
        "h0_b": f32(h0.bias, 1, 1, -1),
        "h1_w": taps(h1.weight),
        "h1_b": f32(h1.bias, 1, 1, -1),
        "h2_w": taps(h2.weight),
        "h2_b": f32(h2.bias, 1, 1, -1),
        "lin_w": lin.float().numpy(),
        "lin_b": f32(top.head.out.bias, 1, 1, 1),
    }


class StreamingMel(nn.Module):
    """frontend.log_mel of one 80 ms chunk and the 352 samples before it, in torch, for B streams:
    (B, 1632) samples -> (B, 8, 32) features.

    The server graph (BatchedStep) needs the front end on the GPU: there, the numpy front end for
    1000 streams would cost more than the whole encoder. The STFT is one strided convolution with
    frontend's windowed DFT rows, in float32 (frontend sums the mel bands in float64; the features
    agree within 3e-5 on real speech, see tests/test_server.py).
    """

    def __init__(self) -> None:
        super().__init__()
        real, imag = stft_basis()
        basis = np.concatenate([real, imag]) * INT16_SCALE  # (514, 512)
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.float32).unsqueeze(1))
        self.register_buffer("filters", torch.tensor(mel_filterbank(), dtype=torch.float32))
        self.bins = real.shape[0]

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        spectrum = nn.functional.conv1d(samples.unsqueeze(1), self.basis, stride=HOP_LENGTH)  # (B, 514, 8)
        power = spectrum[:, : self.bins] ** 2 + spectrum[:, self.bins :] ** 2
        db = 10.0 * torch.log10(torch.clamp(power.transpose(1, 2) @ self.filters, min=AMIN))
        return torch.clamp(db, min=FLOOR_DB) * FEATURE_SCALE + FEATURE_OFFSET


class BatchedStep(nn.Module):
    """forward(audio (B, 1280), state (B, S)) -> (scores (B,), new state (B, S)).

    One 80 ms step of B independent streams of one wake word, from PCM to score: the mel front end,
    the bottom and the top in one graph (wakeword.server runs it, on a GPU for a server's thousands of
    streams). Each stream's state holds its last 352 samples (the front end's overlap), then the
    bottom's caches, then the top's; the silence state is all-zero samples followed by the silence
    caches, so a stream equals the single-stream detector step by step.
    """

    def __init__(self, bottom: StreamingBottom, top: StreamingTop) -> None:
        super().__init__()
        self.mel = StreamingMel()
        self.bottom, self.top = bottom, top
        tail = (("samples", (1, TAIL_SAMPLES)),)
        named = tail + tuple(zip(bottom.layout.names, bottom.layout.shapes, strict=True))
        named += tuple(zip(top.layout.names, top.layout.shapes, strict=True))
        self.layout = StateLayout(tuple(n for n, _ in named), tuple(s for _, s in named))

    @torch.no_grad()
    def initial_state(self) -> torch.Tensor:
        """One stream's silence state, (1, S)."""
        samples = torch.zeros(1, TAIL_SAMPLES, dtype=next(self.parameters()).dtype)
        bottom = self.bottom.initial_state()[None]
        return torch.cat([samples, bottom, self.top.initial_state(self.bottom)[None]], dim=1)

    def forward(self, audio: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = self.layout.unpack(state)
        cut = 1 + len(self.bottom.layout.names)
        samples = torch.cat([parts[0], audio], dim=1)  # (B, 1632)
        frames = self.mel(samples)
        acts, bottom_new = run_cached(list(self.bottom.layers), frames.unsqueeze(1), parts[1:cut])
        scores, top_new = self.top.step(acts, parts[cut:])
        return scores, self.layout.pack([samples[:, -TAIL_SAMPLES:], *bottom_new, *top_new], streams=True)
