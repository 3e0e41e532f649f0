"""Augmentation keeps length and alignment, hits the SNR it draws, and stays in range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import SR, speechlike, tone
from wakeword.augment import (
    AugmentConfig,
    Augmenter,
    apply_rir,
    band_limit,
    change_speed,
    coloured_noise,
    mix_at_snr,
    shift_pitch,
    simulated_rir,
    spec_augment,
    speech_power,
    transient_noise,
)


def dominant_hz(x: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(x * torch.hann_window(len(x))).abs()
    return float(spectrum.argmax()) * SR / len(x)


def test_mix_at_snr_hits_the_target():
    speech, noise = torch.randn(4, SR), torch.randn(4, SR)
    snr = torch.tensor([0.0, 5.0, 10.0, 20.0])
    mixed = mix_at_snr(speech, noise, snr)
    measured = 10 * torch.log10(speech_power(speech) / (mixed - speech).pow(2).mean(-1))
    assert torch.allclose(measured, snr, atol=0.05)


def test_coloured_noise_slopes():
    g = torch.Generator().manual_seed(0)
    noise = coloured_noise(3, 4 * SR, torch.tensor([0.0, 1.0, 2.0]), g)
    spec = torch.fft.rfft(noise).abs().pow(2)
    f = torch.fft.rfftfreq(4 * SR) * SR
    low, high = spec[:, (f > 100) & (f < 200)].mean(-1), spec[:, (f > 3000) & (f < 6000)].mean(-1)
    ratio_db = 10 * torch.log10(low / high)
    assert abs(ratio_db[0]) < 2  # white: flat
    assert ratio_db[1] > 8 and ratio_db[2] > ratio_db[1] + 8  # pink, then brown, fall off


def test_speed_and_pitch_move_the_frequency_and_keep_length():
    x = torch.from_numpy(tone(1.0, 500.0))[None]
    faster = change_speed(x, 1.1)
    assert faster.shape == x.shape
    assert dominant_hz(faster[0, -8000:]) == pytest.approx(550, abs=10)
    higher = shift_pitch(x, 2.0)
    assert higher.shape == x.shape
    assert dominant_hz(higher[0, 4000:12000]) == pytest.approx(500 * 2 ** (2 / 12), abs=10)


def test_reverb_does_not_shift_time():
    x = torch.zeros(1, SR)
    x[0, 8000] = 1.0
    wet = apply_rir(x, simulated_rir(0.5, torch.Generator().manual_seed(0), torch.device("cpu")))
    assert int(wet.abs().argmax()) == 8000
    assert wet[0, 8100:].abs().sum() > 0  # a tail follows


def test_telephone_band_removes_low_and_high():
    low = torch.from_numpy(tone(1.0, 100.0))[None]
    mid = torch.from_numpy(tone(1.0, 1000.0))[None]
    high = torch.from_numpy(tone(1.0, 6000.0))[None]
    gain = [float(band_limit(x, "telephone").pow(2).mean() / x.pow(2).mean()) for x in (low, mid, high)]
    assert gain[0] < 0.2 and gain[1] > 0.7 and gain[2] < 0.05


def test_augmenter_batch_shape_range_and_determinism():
    x = torch.from_numpy(np.stack([speechlike(2.0, seed=i)[: 2 * SR] for i in range(16)]))
    noises = [np.random.default_rng(0).normal(0, 0.1, 5 * SR).astype(np.float32)]
    y1 = Augmenter(noises, config=AugmentConfig(p_pitch=0.5), seed=1)(x)
    y2 = Augmenter(noises, config=AugmentConfig(p_pitch=0.5), seed=1)(x)
    assert y1.shape == x.shape and torch.isfinite(y1).all() and y1.abs().max() <= 1.0
    assert torch.equal(y1, y2)
    assert not torch.allclose(y1, x)


def test_transient_noise_is_bursty_and_unit_variance():
    noise = transient_noise(2 * SR, np.random.default_rng(0))
    assert noise.shape == (2 * SR,) and abs(noise.std() - 1.0) < 1e-3
    frames = (noise[: len(noise) // 160 * 160].reshape(-1, 160) ** 2).mean(1)
    # Clatter: a few 10 ms frames carry most of the energy, unlike steady noise (ratio about 1).
    assert frames.max() / np.median(frames) > 20


def test_babble_rows_are_stretches_of_the_talk():
    talk = np.arange(4 * SR, dtype=np.float32)  # every sample tells where it came from
    config = AugmentConfig(p_noise=1.0, p_coloured_noise=0.0, p_transient_noise=0.0, p_babble_noise=1.0)
    noise, is_babble = Augmenter(babble=[talk], config=config, seed=0)._noise_batch(4, SR)
    assert is_babble.all()
    for row in noise.numpy():
        start = int(row[0])
        assert np.array_equal(row, talk[start : start + SR])


def test_augment_tag_changes_with_the_recipe_and_the_noise():
    noise = [np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)]
    base = Augmenter(noise).tag
    assert Augmenter(noise).tag == base
    assert Augmenter(noise, config=AugmentConfig(p_noise=0.5)).tag != base
    assert Augmenter([noise[0] * 2]).tag != base
    assert Augmenter(noise, babble=noise).tag != base


def test_spec_augment_masks_with_the_floor():
    from wakeword.frontend import FEATURE_OFFSET, FEATURE_SCALE, FLOOR_DB

    feats = torch.full((4, 100, 32), 7.0)
    out = spec_augment(feats, torch.Generator().manual_seed(0), time_masks=2, max_time=8, freq_masks=2)
    floor = FLOOR_DB * FEATURE_SCALE + FEATURE_OFFSET
    masked = out == floor
    assert masked.any() and (out[~masked] == 7.0).all()


def test_rirs_apply_per_row_in_one_batch():
    """One RIR per row in one batched convolution equals convolving each row with its own."""
    from wakeword.augment import apply_rir, simulated_rir

    gen = torch.Generator().manual_seed(0)
    audio = torch.randn(3, 16000, generator=gen)
    rirs = [simulated_rir(rt60, gen, torch.device("cpu")) for rt60 in (0.2, 0.5, 0.9)]
    batched = apply_rir(audio, rirs)
    for i, rir in enumerate(rirs):
        alone = apply_rir(audio[i : i + 1], rir)
        assert torch.allclose(batched[i : i + 1], alone, atol=1e-5)
    assert (batched[0] - batched[2]).abs().max() > 0.01  # the rows did get different rooms
