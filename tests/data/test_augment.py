"""Training augmentation: each transform does what it says, keeps shape, dtype and finiteness, is
reproducible from its seed, and leaves mixtures exact and the validation set alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.model.corpus import SAMPLE_RATE as CORPUS_RATE, write_corpus
from vocalsep.config import AugmentParams, DataParams
from vocalsep.data import MixtureDataset, read_index, validation_set
from vocalsep.data import augment

RATE = 16000
EVERY = {name: 1.0 for name, _ in augment.VOICE_CHAIN + augment.MUSIC_CHAIN}


def tone(f0: float, seconds: float = 1.0, harmonics: int = 1, amplitude: float = 0.3, rate: int = RATE) -> np.ndarray:
    """(2, samples) float32 harmonic tone with 1/k partials."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, harmonics + 1))
    wave = amplitude * wave / np.max(np.abs(wave))
    return np.stack([wave, wave]).astype(np.float32)


def noise(seconds: float = 1.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, int(seconds * rate))) * 0.1).astype(np.float32)


def band_power(audio: np.ndarray, rate: int, low: float, high: float, windowed: bool = False) -> float:
    """Mean spectral power of channel 0 between `low` and `high` Hz; `windowed` takes it through a Hann
    window first (without one, leakage from a strong band reads as a floor near -60 dB in an empty one)."""
    signal = audio[0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size) if windowed else signal)) ** 2
    freqs = np.fft.rfftfreq(audio.shape[1], 1 / rate)
    return float(spectrum[(freqs >= low) & (freqs < high)].mean())


def peak_hz(audio: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    return float(np.fft.rfftfreq(audio.shape[1], 1 / rate)[np.argmax(spectrum)])


def db(ratio: float) -> float:
    return 10 * np.log10(ratio)


def params(**values) -> AugmentParams:
    return AugmentParams(**values)


def check_audio(out: np.ndarray, reference: np.ndarray) -> None:
    assert out.shape == reference.shape and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.parametrize("semitones", [4.0, -5.0])
def test_pitch_shift_moves_the_fundamental(semitones):
    audio = tone(220.0, harmonics=6)
    out = augment.pitch_shift(audio, RATE, np.random.default_rng(0), params(pitch_semitones=(semitones, semitones)))
    check_audio(out, audio)
    assert peak_hz(audio) == pytest.approx(220.0, rel=0.01)
    assert peak_hz(out[:, RATE // 4:]) == pytest.approx(220.0 * 2 ** (semitones / 12), rel=0.03)


@pytest.mark.parametrize("factor", [1.2, 0.8])
def test_speed_change_moves_a_tone_and_keeps_the_length(factor):
    audio = tone(440.0)
    out = augment.voice_speed(audio, RATE, np.random.default_rng(0), params(speed_factor=(factor, factor)))
    check_audio(out, audio)
    played = int(audio.shape[1] / factor)
    assert peak_hz(out[:, :min(played, audio.shape[1]) - 100]) == pytest.approx(440.0 * factor, rel=0.01)
    if factor > 1:  # ran out of audio: the rest is padding
        assert np.all(out[:, played + 10:] == 0) and np.abs(out[:, :played - 10]).max() > 0.1


def gliding_voice(seconds: float = 4.0, rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """A speech-like harmonic tone whose pitch glides around 160 Hz (+-3 semitones), and its F0 per sample."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 160.0 * 2 ** ((2 * np.sin(2 * np.pi * 0.7 * t) + np.sin(2 * np.pi * 2.3 * t)) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    wave = 0.2 * wave / np.max(np.abs(wave))
    return np.stack([wave, wave]).astype(np.float32), f0


def semitones(audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    track = augment.pitch_track(audio.mean(axis=0), rate, 512)
    return 12 * np.log2(track[track > 0] / 440.0)


def test_the_pitch_track_follows_a_glide_and_finds_no_pitch_in_noise():
    audio, f0 = gliding_voice()
    track = augment.pitch_track(audio.mean(axis=0), RATE, 512)
    centres = augment.pitch_centres(track.shape[0], RATE, 512)
    inside = centres < f0.shape[0]
    assert (track[inside] > 0).mean() > 0.95
    assert np.median(np.abs(12 * np.log2(track[inside] / f0[centres[inside]]))) < 0.15
    assert (augment.pitch_track(noise(4.0)[0], RATE, 512) > 0).mean() < 0.05


def test_sing_holds_a_gliding_voice_on_semitone_notes_and_leaves_unvoiced_sound_alone():
    audio, _ = gliding_voice()
    out = augment.sing(audio, RATE, np.random.default_rng(0), AugmentParams())
    check_audio(out, audio)
    before, after = semitones(audio), semitones(out)
    off_note = [np.median(np.abs(x - np.round(x))) for x in (before, after)]
    glide = [np.median(np.abs(np.diff(x))) for x in (before, after)]
    assert off_note[1] < 0.7 * off_note[0], off_note  # nearer the semitones (the vibrato keeps it off 0)
    assert glide[1] < 0.7 * glide[0], glide  # held notes: less pitch change from frame to frame
    hiss = noise(2.0)
    assert np.array_equal(augment.sing(hiss, RATE, np.random.default_rng(0), AugmentParams()), hiss)


def test_music_speed_uses_its_own_range():
    audio = tone(440.0)
    out = augment.music_speed(audio, RATE, np.random.default_rng(0),
                              params(speed_factor=(2.0, 2.0), music_speed_factor=(1.05, 1.05)))
    assert peak_hz(out[:, :14000]) == pytest.approx(462.0, rel=0.01)


def test_phone_band_removes_lows_and_highs():
    audio = noise()
    out = augment.phone_band(audio, RATE, np.random.default_rng(0), params())
    check_audio(out, audio)
    for low, high in ((20, 100), (7000, 8000)):
        kept = band_power(out, RATE, 1000, 2000) / band_power(audio, RATE, 1000, 2000)
        assert db(band_power(out, RATE, low, high) / band_power(audio, RATE, low, high)) < db(kept) - 25


def test_lowpass_removes_energy_above_the_cutoff():
    rate = 44100
    audio = noise(rate=rate)
    out = augment.lowpass(audio, rate, np.random.default_rng(0), params(lowpass_hz=(11000.0, 11000.0)))
    check_audio(out, audio)
    assert db(band_power(out, rate, 1000, 5000) / band_power(audio, rate, 1000, 5000)) > -1
    assert db(band_power(out, rate, 18000, 22000) / band_power(audio, rate, 18000, 22000)) < -25


def test_lowpass_cutoff_stays_below_nyquist():
    audio = noise(rate=8000)
    out = augment.lowpass(audio, 8000, np.random.default_rng(0), params(lowpass_hz=(11000.0, 11000.0)))
    check_audio(out, audio)
    assert np.abs(out).max() > 0.01


def test_music_is_band_limited_by_its_own_probability():
    """The music chain's low-pass fires on music_lowpass alone (the voice's lowpass probability does not move it)."""
    rate = 44100
    audio = noise(rate=rate)
    only = {name: 0.0 for name in EVERY}
    cut = dict(lowpass_hz=(6000.0, 6000.0), music_lowpass_hz=(6000.0, 6000.0))
    out = augment.augment_accompaniment(audio, rate, np.random.default_rng(0), params(**{**only, "music_lowpass": 1.0}, **cut))
    check_audio(out, audio)
    assert db(band_power(out, rate, 10000, 20000) / band_power(audio, rate, 10000, 20000)) < -25
    same = augment.augment_accompaniment(audio, rate, np.random.default_rng(0), params(**{**only, "lowpass": 1.0}, **cut))
    assert same is audio
    wide = augment.augment_accompaniment(audio, rate, np.random.default_rng(0),
                                         params(**{**only, "music_lowpass": 1.0}, lowpass_hz=(6000.0, 6000.0),
                                                music_lowpass_hz=(15000.0, 15000.0)))
    assert db(band_power(wide, rate, 10000, 13000) / band_power(audio, rate, 10000, 13000)) > -10  # its own range, not 6 kHz


def test_music_is_folded_to_mono_by_its_own_probability():
    """music_mono leaves one signal in both channels, the mid of the input (before level matching); the voice
    chain never folds, and with music_mono 0 the stereo music is untouched."""
    audio = noise(seed=1)
    audio[1] = noise(seed=2)[1]   # independent channels: wide stereo
    only = {name: 0.0 for name in EVERY}
    out = augment.augment_accompaniment(audio, RATE, np.random.default_rng(0), params(**{**only, "music_mono": 1.0}))
    check_audio(out, audio)
    assert np.array_equal(out[0], out[1])
    mid = audio.mean(axis=0)
    assert abs(np.corrcoef(out[0], mid)[0, 1] - 1) < 1e-6
    assert augment.augment_accompaniment(audio, RATE, np.random.default_rng(0), params(**only)) is audio
    voice = augment.augment_vocals(audio, RATE, np.random.default_rng(0), params(**{**only, "music_mono": 1.0}))
    assert voice is audio


def eq_spread_db(out: np.ndarray, audio: np.ndarray) -> float:
    """Range over octave bands of the output/input power ratio, in dB."""
    edges = [60, 120, 250, 500, 1000, 2000, 4000, 7900]
    ratios = [db(band_power(out, RATE, lo, hi) / band_power(audio, RATE, lo, hi)) for lo, hi in zip(edges, edges[1:])]
    return max(ratios) - min(ratios)


def test_eq_reshapes_the_spectrum_by_the_gains_it_is_given():
    audio = noise()
    boosted = augment.equalize(audio, RATE, np.random.default_rng(0), params(eq_db=(9.0, 9.0)))
    flat = augment.equalize(audio, RATE, np.random.default_rng(0), params(eq_db=(0.0, 0.0)))
    check_audio(boosted, audio)
    assert eq_spread_db(boosted, audio) > 6
    assert eq_spread_db(flat, audio) < 0.5


def test_reverb_adds_a_decaying_tail_after_an_impulse():
    audio = np.zeros((2, RATE), np.float32)
    audio[:, 1000] = 0.5
    out = augment.reverb(audio, RATE, np.random.default_rng(0), params(reverb_room=(0.8, 0.8), reverb_wet=(0.4, 0.4)))
    check_audio(out, audio)
    tail = out[:, 1000 + RATE // 20: 1000 + RATE // 5]  # 50-200 ms after the click, where the input is silent
    assert np.sqrt(np.mean(tail ** 2)) > 1e-3
    assert np.abs(out[:, 1000 + RATE // 2:]).max() < np.abs(tail).max()


def loud_to_quiet_db(audio: np.ndarray) -> float:
    """Level of the first half over the second, RMS in dB, skipping the attack and the switch-over."""
    def rms(x):
        return np.sqrt(np.mean(x.astype(np.float64) ** 2))
    return 20 * np.log10(rms(audio[:, 2000:RATE // 2]) / rms(audio[:, RATE // 2 + 2000:]))


def test_compression_narrows_the_dynamic_range():
    audio = tone(300.0, amplitude=0.9)
    audio[:, RATE // 2:] *= 0.01  # a loud half at -1 dBFS, a quiet half 40 dB below, under the threshold
    out = augment.compress(audio, RATE, np.random.default_rng(0),
                           params(compress_threshold_db=(-30.0, -30.0), compress_ratio=(8.0, 8.0)))
    check_audio(out, audio)
    assert loud_to_quiet_db(audio) == pytest.approx(40.0, abs=0.5)
    assert loud_to_quiet_db(out) < 25


def test_saturation_adds_odd_harmonics():
    audio = tone(440.0, amplitude=0.5)
    out = augment.saturate(audio, RATE, np.random.default_rng(0), params(saturate_drive_db=(18.0, 18.0)))
    check_audio(out, audio)
    def third(x):
        return db(band_power(x, RATE, 1300, 1340) / band_power(x, RATE, 430, 450))
    assert third(audio) < -80 and third(out) > -30


@pytest.mark.parametrize("name,transform", augment.VOICE_CHAIN + augment.MUSIC_CHAIN)
def test_every_transform_keeps_shape_dtype_and_finiteness_and_changes_the_audio(name, transform):
    audio = tone(200.0, harmonics=8) + noise() * 0.1
    out = transform(audio, RATE, np.random.default_rng(1), AugmentParams())
    check_audio(out, audio)
    assert not np.allclose(out, audio, atol=1e-3), name


def test_the_chains_fire_by_probability_and_keep_the_loudness():
    audio = tone(200.0, harmonics=8)
    rng = np.random.default_rng(0)
    assert augment.augment_vocals(audio, RATE, rng, params()) is audio
    out = augment.augment_vocals(audio, RATE, rng, params(**EVERY))
    check_audio(out, audio)
    assert np.sqrt(np.mean(out ** 2)) == pytest.approx(np.sqrt(np.mean(audio ** 2)), rel=1e-3)
    assert not augment.is_active(params()) and augment.is_active(params(music_eq=0.1))


def test_the_same_seed_gives_the_same_audio_and_other_seeds_differ():
    audio = tone(200.0, harmonics=8)
    half = params(**{name: 0.5 for name in EVERY})
    runs = [augment.augment_vocals(audio, RATE, np.random.default_rng(seed), half) for seed in (3, 3, 4, 5)]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2]) and not np.array_equal(runs[2], runs[3])


def test_runaway_outputs_are_made_finite_and_capped():
    reference = tone(200.0)
    wild = reference * 1e6
    wild[0, :10] = [np.nan, np.inf, -np.inf] + [0.0] * 7
    out = augment.safe(wild, reference)
    check_audio(out, reference)
    assert np.abs(out).max() <= augment.PEAK_CEILING


DATA = DataParams(segment_seconds=0.25, examples_per_epoch=16, val_examples=4)
AUGMENTED = dataclasses.replace(DATA, augment=params(**{name: 0.6 for name in EVERY}))


@pytest.fixture
def table(tmp_path, monkeypatch):
    write_corpus(tmp_path)
    monkeypatch.chdir(tmp_path)
    return read_index(tmp_path / "data/index/train.parquet")


def test_augmented_examples_stay_exact_sums_and_differ_from_plain_ones(table):
    plain = MixtureDataset(table, DATA, CORPUS_RATE, examples=16, seed=0)
    augmented = MixtureDataset(table, AUGMENTED, CORPUS_RATE, examples=16, seed=0)
    changed = 0
    for i in range(8):
        mixture, vocals = augmented[i]
        v, a, ids = augmented.example(i)
        assert torch.equal(mixture, torch.from_numpy(v + a)) and torch.equal(vocals, torch.from_numpy(v))
        assert v.dtype == a.dtype == np.float32 and np.isfinite(v).all() and np.isfinite(a).all()
        v0, a0, ids0 = plain.example(i)
        assert ids == ids0 and v.shape == v0.shape
        changed += not np.array_equal(v, v0)
    assert changed >= 4
    assert np.array_equal(augmented.example(3)[0], augmented.example(3)[0])


def test_the_validation_set_ignores_augmentation_settings(table):
    mixture, vocals = validation_set(table, DATA, CORPUS_RATE)
    mixture_aug, vocals_aug = validation_set(table, AUGMENTED, CORPUS_RATE)
    assert torch.equal(mixture, mixture_aug) and torch.equal(vocals, vocals_aug)


def test_solo_examples_silence_one_stem_and_stay_exact_sums(table):
    """voice_alone gives examples whose music is silent (target = input); music_alone, silent vocals."""
    solo = dataclasses.replace(DATA, voice_alone=0.3, music_alone=0.3)
    plain = MixtureDataset(table, DATA, CORPUS_RATE, examples=64, seed=0)
    dataset = MixtureDataset(table, solo, CORPUS_RATE, examples=64, seed=0)
    kinds = {"voice": 0, "music": 0, "both": 0}
    for i in range(64):
        v, a, _ = dataset.example(i)
        mixture, vocals = dataset[i]
        assert torch.equal(mixture, torch.from_numpy(v + a)) and torch.equal(vocals, torch.from_numpy(v))
        v0, a0, _ = plain.example(i)
        kind = "voice" if not a.any() else "music" if not v.any() else "both"
        kinds[kind] += 1
        if kind == "voice":
            assert np.array_equal(v, v0)  # the kept stem is the plain example's, gains and flips included
        elif kind == "music":
            assert np.array_equal(a, a0)
        else:
            assert np.array_equal(v, v0) and np.array_equal(a, a0)
    assert all(10 <= n <= 35 for n in kinds.values()), kinds


def test_solo_probabilities_must_leave_room_for_mixtures():
    from vocalsep.config import ParamsError, params_from_dict
    with pytest.raises(ParamsError, match=r"data\.voice_alone: plus data\.music_alone"):
        params_from_dict({"data": {"voice_alone": 0.7, "music_alone": 0.5}})
    assert params_from_dict({"data": {"voice_alone": 0.5, "music_alone": 0.5}}).data.music_alone == 0.5


def above(out: np.ndarray, audio: np.ndarray, rate: int, hz: float) -> float:
    """dB of `out`'s power against `audio`'s from `hz` to 20 kHz, Hann-windowed."""
    return db(band_power(out, rate, hz, 20000, windowed=True) / band_power(audio, rate, hz, 20000, windowed=True))


def test_music_resample_leaves_an_empty_band_where_the_low_pass_leaves_a_floor():
    """music_resample is a file recorded at a lower rate: nothing above that rate's Nyquist, the band below
    kept. The 24 dB/octave low-pass at a cutoff under that Nyquist still leaves a floor a log-magnitude
    model can read; that floor is why music_resample exists."""
    rate = 44100
    audio = noise(rate=rate)
    narrow = params(music_resample_hz=(8000.0,), music_lowpass_hz=(3500.0, 3500.0))
    out = augment.music_resample(audio, rate, np.random.default_rng(0), narrow)
    check_audio(out, audio)
    assert above(out, audio, rate, 4500) < -100
    assert abs(db(band_power(out, rate, 100, 3000) / band_power(audio, rate, 100, 3000))) < 0.5
    floor = augment.music_lowpass(audio, rate, np.random.default_rng(0), narrow)
    assert above(floor, audio, rate, 4500) > -60


def test_music_resample_draws_its_rates_and_skips_rates_at_or_above_the_input():
    rate = 44100
    audio = noise(rate=rate)
    rates = params(music_resample_hz=(8000.0, 16000.0))
    edges = set()
    for seed in range(12):
        out = augment.music_resample(audio, rate, np.random.default_rng(seed), rates)
        edges.add(db(band_power(out, rate, 5000, 7000) / band_power(audio, rate, 5000, 7000)) > -3)
    assert edges == {True, False}  # 16 kHz keeps 5-7 kHz, 8 kHz removes it, and both are drawn
    same = params(music_resample_hz=(44100.0, 48000.0))
    assert augment.music_resample(audio, rate, np.random.default_rng(0), same) is audio


def test_music_resample_fires_on_the_music_alone_by_its_own_probability():
    rate = 44100
    audio = noise(rate=rate)
    only = {name: 0.0 for name in EVERY}
    on = params(**{**only, "music_resample": 1.0}, music_resample_hz=(8000.0,))
    out = augment.augment_accompaniment(audio, rate, np.random.default_rng(0), on)
    check_audio(out, audio)
    assert above(out, audio, rate, 4500) < -100
    assert augment.augment_vocals(audio, rate, np.random.default_rng(0), on) is audio
    assert augment.augment_accompaniment(audio, rate, np.random.default_rng(0), params(**only)) is audio
