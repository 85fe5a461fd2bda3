"""Random transforms of the training stems, built on pedalboard (Spotify's effects library) and,
for the pitch shift, python-stretch (Signalsmith Stretch): 3.5x the speed of pedalboard's Rubber
Band on 4 s stereo segments (benchmarks/results/augment.json), which keeps the loader ahead of training.

The voice stem gets sung notes (`sing`: speech with its pitch held on semitones, with vibrato),
new "speakers" and new recording chains: pitch shift (the
formants move with the pitch, so a shifted voice sounds like another person), a resampling speed change (pitch and tempo
together), band limits (phone band 300-3400 Hz, a random low-pass such as 11 kHz),
random peaking and shelving EQ, room reverb, compression and tanh saturation.
The music stem gets EQ, a speed change, a random low-pass and a lower sample rate (8-16 kHz files). Each transform fires with its own
probability from `AugmentParams`; every random number comes from the
`numpy.random.Generator` passed in, so an example is the same in any worker,
rank or resumed run. Arrays are `(channels, samples)` float32 in and out, of
the same length, finite, at the input's loudness (level is `data.gain_db`'s job).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pedalboard
import python_stretch
import soxr

from vocalsep.config import AugmentParams

Transform = Callable[[np.ndarray, int, np.random.Generator, AugmentParams], np.ndarray]

PHONE_BAND_HZ = (300.0, 3400.0)
NYQUIST_MARGIN = 0.45  # filter cutoffs stay below 0.45 x the sample rate, whatever the profile's rate
PEAK_CEILING = 4.0  # +12 dBFS: beyond this an output is a runaway effect, scaled back rather than trained on
SILENT_RMS = 1e-8


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _cutoff(hz: float, sample_rate: int) -> float:
    """`hz`, kept below Nyquist so 8 kHz test corpora and 44.1 kHz songs take the same params."""
    return min(hz, NYQUIST_MARGIN * sample_rate)


def _run(plugins: list, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """`audio` (channels, samples) through a fresh chain (no state carried between examples)."""
    return pedalboard.Pedalboard(plugins)(audio, float(sample_rate))


def fit_length(audio: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """`audio` (channels, n) cropped at a random offset or zero-padded at the end to (channels, frames)."""
    if audio.shape[1] >= frames:
        start = int(rng.integers(audio.shape[1] - frames + 1))
        return audio[:, start:start + frames]
    return np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))


def transpose(audio: np.ndarray, sample_rate: int, semitones: float, cheaper: bool = True) -> np.ndarray:
    """Pitch and formants moved by `semitones`, duration kept (Signalsmith Stretch). The cheaper preset is 1.5x
    faster, fine for training; `benchmarks/pitch.py` takes the default one."""
    stretch = python_stretch.Signalsmith.Stretch()
    stretch.preset(audio.shape[0], float(sample_rate), cheaper)
    stretch.setTransposeSemitones(float(semitones))
    return stretch.process(np.ascontiguousarray(audio, dtype=np.float32))


def pitch_shift(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """Pitch and formants moved by a random number of semitones, duration kept: a different voice."""
    return transpose(audio, sample_rate, _uniform(rng, p.pitch_semitones))


def change_speed(audio: np.ndarray, sample_rate: int, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Played `factor` times faster (pitch up by the same ratio), then fitted back to the input's length."""
    faster = soxr.resample(np.ascontiguousarray(audio.T), sample_rate * factor, sample_rate, quality="HQ")
    return fit_length(np.ascontiguousarray(faster.T, dtype=np.float32), audio.shape[1], rng)


PITCH_HZ = (70.0, 500.0)  # the voice pitches `pitch_track` looks for


def pitch_centres(frames: int, sample_rate: int, hop: int) -> np.ndarray:
    """The sample at the centre of each of `pitch_track`'s `frames` (frames of 2 x the longest period)."""
    return np.arange(frames) * hop + int(sample_rate / PITCH_HZ[0])


def pitch_track(mono: np.ndarray, sample_rate: int, hop: int) -> np.ndarray:
    """F0 in Hz per `hop` samples of `mono` (0 where unvoiced): the normalised autocorrelation's peak between
    PITCH_HZ, taken where it is at least 0.5, over frames of 2 x the longest period (`pitch_centres`)."""
    lo, hi = int(sample_rate / PITCH_HZ[1]), int(sample_rate / PITCH_HZ[0])
    size = 2 * hi
    count = max(1, 1 + (mono.shape[0] - size) // hop)
    padded = np.pad(mono, (0, max(0, (count - 1) * hop + size - mono.shape[0])))
    frames = np.lib.stride_tricks.sliding_window_view(padded, size)[::hop][:count]
    spectrum = np.fft.rfft(frames * np.hanning(size), 2 * size)
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[:, :hi + 1]
    lag = lo + np.argmax(acf[:, lo:hi + 1], axis=1)
    strength = acf[np.arange(count), lag] / np.maximum(acf[:, 0], 1e-12)
    voiced = (strength >= 0.5) & (acf[:, 0] > 1e-6 * size)
    return np.where(voiced, sample_rate / lag, 0.0)


def sing(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """Speech made sung: the pitch held on notes. The voice is split into notes of 0.15-0.5 s; each voiced
    stretch is played faster or slower (`rate = note / f0`, the formants follow, as in `speed`) so that its
    pitch sits on the semitone nearest its median, with a 5-6 Hz vibrato; slower playback lengthens it."""
    hop = 512
    f0 = pitch_track(audio.mean(axis=0), sample_rate, hop)
    rate = np.ones_like(f0)
    start = 0
    while start < f0.shape[0]:
        end = start + max(1, int(rng.uniform(0.15, 0.5) * sample_rate / hop))
        note_f0 = f0[start:end]  # shorter than end - start at the last note
        held = note_f0 > 0
        if held.any():
            note = 440.0 * 2 ** (np.round(12 * np.log2(np.median(note_f0[held]) / 440.0)) / 12)
            seconds = np.arange(note_f0.shape[0]) * hop / sample_rate
            target = note * 2 ** (float(rng.uniform(0.1, 0.4)) / 12 * np.sin(2 * np.pi * rng.uniform(5, 6) * seconds))
            rate[start:end][held] = np.clip(target[held] / note_f0[held], 0.7, 1.4)
        start = end
    rate = np.convolve(np.pad(rate, 2, mode="edge"), np.ones(5) / 5, mode="valid")  # no clicks between frames
    per_sample = np.interp(np.arange(audio.shape[1]), pitch_centres(rate.shape[0], sample_rate, hop), rate)
    out_time = np.concatenate([[0.0], np.cumsum(1.0 / per_sample)])[:-1]  # where each input sample lands
    read = np.interp(np.arange(int(out_time[-1]) + 1), out_time, np.arange(audio.shape[1]))
    sung = np.stack([np.interp(read, np.arange(audio.shape[1]), channel) for channel in audio]).astype(np.float32)
    return fit_length(sung, audio.shape[1], rng)


def voice_speed(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    return change_speed(audio, sample_rate, _uniform(rng, p.speed_factor), rng)


def music_speed(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    return change_speed(audio, sample_rate, _uniform(rng, p.music_speed_factor), rng)


def phone_band(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """300-3400 Hz at 24 dB/octave (ladder filters: pedalboard's plain ones fall only 6 dB/octave)."""
    low, high = PHONE_BAND_HZ
    return _run([pedalboard.LadderFilter(pedalboard.LadderFilter.Mode.HPF24, cutoff_hz=low),
                 pedalboard.LadderFilter(pedalboard.LadderFilter.Mode.LPF24, cutoff_hz=_cutoff(high, sample_rate))],
                audio, sample_rate)


def lowpass(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """A 24 dB/octave low-pass at a random cutoff in `lowpass_hz` (old codecs, 22 kHz files, cheap mics)."""
    cutoff = _cutoff(_uniform(rng, p.lowpass_hz), sample_rate)
    return _run([pedalboard.LadderFilter(pedalboard.LadderFilter.Mode.LPF24, cutoff_hz=cutoff)], audio, sample_rate)


def music_lowpass(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """The music through the same low-pass at a cutoff in `music_lowpass_hz` (8 and 16 kHz files, phone lines)."""
    cutoff = _cutoff(_uniform(rng, p.music_lowpass_hz), sample_rate)
    return _run([pedalboard.LadderFilter(pedalboard.LadderFilter.Mode.LPF24, cutoff_hz=cutoff)], audio, sample_rate)


def music_resample(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """The music resampled to a rate from `music_resample_hz` and back: a file recorded at 8-16 kHz.

    Nothing is left above the low rate's Nyquist. `music_lowpass` leaves a floor, 24 dB down an octave
    past its cutoff, that a model reading log magnitudes can tell from an empty band: base_v16 let
    training music resampled through 8 kHz come out as voice at -22 dB, against -77 dB low-passed at
    3.6 kHz (the 8 kHz asterisk prompts are a third of the training voices).
    """
    rate = float(p.music_resample_hz[int(rng.integers(len(p.music_resample_hz)))])
    if rate >= sample_rate:
        return audio
    low = soxr.resample(np.ascontiguousarray(audio.T), sample_rate, rate, quality="HQ")
    back = soxr.resample(low, rate, sample_rate, quality="HQ").T[:, :audio.shape[1]]
    return np.ascontiguousarray(np.pad(back, ((0, 0), (0, audio.shape[1] - back.shape[1]))), dtype=np.float32)


def music_mono(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """The music folded to mono, the same signal in every channel (mono records, phone lines, music on hold)."""
    return np.repeat(audio.mean(axis=0, keepdims=True), audio.shape[0], axis=0)


def equalize(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """A low shelf (80-400 Hz), a peak (200 Hz-5 kHz, log-uniform) and a high shelf (3-10 kHz), gains in `eq_db`."""
    def hz(low: float, high: float) -> float:
        return _cutoff(float(np.exp(rng.uniform(np.log(low), np.log(high)))), sample_rate)

    return _run([pedalboard.LowShelfFilter(cutoff_frequency_hz=hz(80, 400), gain_db=_uniform(rng, p.eq_db)),
                 pedalboard.PeakFilter(cutoff_frequency_hz=hz(200, 5000), gain_db=_uniform(rng, p.eq_db),
                                       q=float(rng.uniform(0.5, 3.0))),
                 pedalboard.HighShelfFilter(cutoff_frequency_hz=hz(3000, 10000), gain_db=_uniform(rng, p.eq_db))],
                audio, sample_rate)


def reverb(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """A Freeverb room of random size and wet level; the dry part shrinks as the wet part grows."""
    wet = _uniform(rng, p.reverb_wet)
    room = pedalboard.Reverb(room_size=_uniform(rng, p.reverb_room), damping=float(rng.uniform(0.2, 0.8)),
                             wet_level=wet, dry_level=1.0 - wet, width=float(rng.uniform(0.5, 1.0)))
    return _run([room], audio, sample_rate)


def compress(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """Broadcast- or vocal-chain-style compression: random threshold, ratio, attack and release."""
    threshold = _uniform(rng, p.compress_threshold_db)
    ratio = _uniform(rng, p.compress_ratio)
    return _run([pedalboard.Compressor(threshold_db=threshold, ratio=ratio, attack_ms=float(rng.uniform(1.0, 20.0)),
                                       release_ms=float(rng.uniform(50.0, 300.0)))], audio, sample_rate)


def saturate(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, p: AugmentParams) -> np.ndarray:
    """tanh waveshaping driven by a random gain in `saturate_drive_db`: adds odd harmonics."""
    return _run([pedalboard.Distortion(drive_db=_uniform(rng, p.saturate_drive_db))], audio, sample_rate)


# (probability field, transform), in signal-chain order: the voice is sung (notes, pitch, speed), recorded
# (band, EQ, room), then processed (compression, saturation).
VOICE_CHAIN: tuple[tuple[str, Transform], ...] = (
    ("sing", sing), ("pitch_shift", pitch_shift), ("speed", voice_speed), ("phone_band", phone_band), ("lowpass", lowpass),
    ("eq", equalize), ("reverb", reverb), ("compress", compress), ("saturate", saturate),
)
# The music is band-limited as often as the voice: with band-limited voices only, a narrow band became a cue
# for voice, and 8 kHz music on hold came back nearly whole (benchmarks/results/quality.json, base_v6).
# It is folded to mono too: the training voices are mono (the same in both channels), and base_v7 let
# stereo music through 2-10 dB louder once it was folded to mono (benchmarks/results/leak-mono.json).
MUSIC_CHAIN: tuple[tuple[str, Transform], ...] = (("music_mono", music_mono), ("music_speed", music_speed),
                                                  ("music_eq", equalize), ("music_lowpass", music_lowpass),
                                                  ("music_resample", music_resample))


def is_active(params: AugmentParams) -> bool:
    """Whether any transform can fire (all probabilities 0: the stems are returned untouched, no draws made)."""
    return any(getattr(params, name) > 0 for name, _ in VOICE_CHAIN + MUSIC_CHAIN)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def safe(audio: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`audio` made finite float32 at `reference`'s RMS, peaks capped at PEAK_CEILING; both (channels, samples)."""
    out = np.nan_to_num(audio.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    rms, target = _rms(out), _rms(reference)
    if rms > SILENT_RMS and target > SILENT_RMS:
        out = out * np.float32(target / rms)
    peak = float(np.max(np.abs(out), initial=0.0))
    if peak > PEAK_CEILING:
        out = out * np.float32(PEAK_CEILING / peak)
    return np.ascontiguousarray(out, dtype=np.float32)


def apply_chain(chain: tuple[tuple[str, Transform], ...], audio: np.ndarray, sample_rate: int,
                rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """Each transform of `chain` with its own probability; (channels, samples) in, same shape out.

    One coin per transform is always drawn (fired or not), so the coins of later
    transforms do not depend on which earlier ones fired.
    """
    coins = rng.random(len(chain))
    out = audio
    for (name, transform), coin in zip(chain, coins):
        if coin < getattr(params, name):
            out = transform(out, sample_rate, rng, params)
    if out is audio:
        return audio
    return safe(out, audio)


def augment_vocals(vocals: np.ndarray, sample_rate: int, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """The voice chain on `vocals` (channels, samples) float32."""
    return apply_chain(VOICE_CHAIN, vocals, sample_rate, rng, params)


def augment_accompaniment(accompaniment: np.ndarray, sample_rate: int, rng: np.random.Generator,
                          params: AugmentParams) -> np.ndarray:
    """The music chain on `accompaniment` (channels, samples) float32."""
    return apply_chain(MUSIC_CHAIN, accompaniment, sample_rate, rng, params)
