"""benchmarks/quality.py's pure pieces on tiny synthetic audio: windows, mixing, scoring rows, merging."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests import benchmark_modules
from vocalsep.levels import block_rms_db
from vocalsep.scoring import Track

RATE = 16000
BLOCK = 800  # 50 ms at RATE


@pytest.fixture(scope="module")
def quality():
    """benchmarks/quality.py imported as a module (benchmarks/ is not a package)."""
    return benchmark_modules.load("quality", "quality_bench")


def bursts(seconds: float, seed: int) -> np.ndarray:
    """(frames, 2) float32 noise bursts of 0.1-1.5 s with digital-silence gaps of 0.05-0.8 s (speech-like)."""
    rng = np.random.default_rng(seed)
    pieces, length = [], 0
    while length < seconds * RATE:
        on = int(rng.uniform(0.1, 1.5) * RATE)
        off = int(rng.uniform(0.05, 0.8) * RATE)
        pieces += [0.1 * rng.standard_normal((on, 2)), np.zeros((off, 2))]
        length += on + off
    return np.concatenate(pieces)[: int(seconds * RATE)].astype(np.float32)


def noise(seconds: float, level: float, seed: int) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal((int(seconds * RATE), 2))).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_activity_is_in_range_and_block_aligned(quality, seed):
    audio = bursts(60.0, seed)
    frames = 10 * RATE
    start, fraction, miss = quality.choose_window(audio, RATE, frames, (0.75, 0.9), np.random.default_rng(seed))
    assert miss == 0 and start % BLOCK == 0 and start + frames <= audio.shape[0]
    excerpt = audio[start:start + frames]
    measured = float(np.mean(block_rms_db(excerpt, RATE, 0.05) > -40.0))
    assert measured == pytest.approx(fraction) and 0.75 <= measured <= 0.9


def test_window_falls_back_to_the_closest_fraction(quality):
    audio = noise(30.0, 0.1, 0)  # active everywhere: no window can be 75-90 % active
    start, fraction, miss = quality.choose_window(audio, RATE, 10 * RATE, (0.75, 0.9), np.random.default_rng(0))
    assert fraction == 1.0 and miss == pytest.approx(0.1)


def test_window_longer_than_the_audio_is_refused(quality):
    with pytest.raises(ValueError, match="shorter than the window"):
        quality.choose_window(noise(2.0, 0.1, 0), RATE, 3 * RATE, (0.0, 1.0), np.random.default_rng(0))


@pytest.mark.parametrize("ratio", [-6.0, 0.0, 3.0])
def test_mix_hits_the_ratio_and_sums_exactly(quality, ratio):
    vocals, music = bursts(5.0, 3) * 2, noise(5.0, 0.3, 4)  # loud: the sum must be scaled down
    mixture, v, a, scale = quality.mix(vocals, music, ratio, RATE)
    assert mixture.dtype == v.dtype == a.dtype == np.float32
    assert np.array_equal(mixture, v + a)
    assert scale < 1.0 and np.max(np.abs(mixture)) <= quality.MIX_PEAK
    assert quality.loudness_ratio(v, a, RATE) == pytest.approx(ratio, abs=0.1)
    assert np.allclose(a, music * scale, rtol=1e-6, atol=0)  # the accompaniment is only scaled by the common factor


def test_quiet_mix_is_not_scaled(quality):
    mixture, v, a, scale = quality.mix(bursts(5.0, 5) * 0.1, noise(5.0, 0.01, 6), 0.0, RATE)
    assert scale == 1.0 and np.array_equal(mixture, v + a)


def test_package_pairs_cover_every_package_and_vary(quality):
    pairs = quality.package_pairs(["v1", "v2", "v3", "v4"], ["m1", "m2", "m3"], 24)
    assert {p[0] for p in pairs} == {"v1", "v2", "v3", "v4"} and {p[1] for p in pairs} == {"m1", "m2", "m3"}
    assert [sum(p[0] == v for p in pairs) for v in ("v1", "v2", "v3", "v4")] == [6, 6, 6, 6]
    assert len(set(pairs)) == 12


@pytest.mark.parametrize("voices, musics", [(3, 4), (3, 3), (2, 5), (4, 3)])
def test_package_pairs_meet_every_pairing(quality, voices, musics):
    names_v, names_m = [f"v{i}" for i in range(voices)], [f"m{i}" for i in range(musics)]
    pairs = quality.package_pairs(names_v, names_m, voices * musics)
    assert len(set(pairs)) == voices * musics  # a voice is never locked to one music


def noisy_track(seconds: float = 3.0, seed: int = 0) -> Track:
    rng = np.random.default_rng(seed)
    vocals = (0.1 * rng.standard_normal((2, int(seconds * RATE)))).astype(np.float32)
    accompaniment = (0.1 * rng.standard_normal((2, int(seconds * RATE)))).astype(np.float32)
    return Track("00", vocals + accompaniment, vocals, accompaniment, RATE)


def test_baseline_rows(quality):
    track = noisy_track()
    rows = {name: quality.score_track(system, track, 1.0)[0] for name, system in quality.BASELINE_SYSTEMS.items()}
    assert rows["mixture"]["si_sdri"] == 0.0
    assert rows["mixture"]["sdr"] == pytest.approx(0.0, abs=0.2)  # museval's mixture oracle, equal powers
    assert rows["mixture"]["si_sdr"] == pytest.approx(0.0, abs=0.1)  # equal powers
    assert {k: rows["silence"][k] for k in ("sdr", "si_sdr", "si_sdri")} == {"sdr": None, "si_sdr": None,
                                                                             "si_sdri": None}
    assert rows["irm"]["si_sdri"] > 3.0


def test_behaviour_of_identity_and_silence(quality):
    track = noisy_track()
    identity = quality.score_track(quality.BASELINE_SYSTEMS["mixture"], track, 1.0)[0]
    assert identity["pass_through"] == 100.0 and identity["leak"] == 0.0 and identity["level_spread"] == 0.0
    silence = quality.score_track(quality.BASELINE_SYSTEMS["silence"], track, 1.0)[0]
    assert silence["pass_through"] is None and silence["leak"] == -120.0 and silence["level_spread"] is None


def test_level_spread_sees_a_level_dependent_system(quality):
    """A hard clip at 0.1 changes with input level; the identity does not."""
    track = noisy_track()
    clip = quality.score_track(lambda m, v, a: np.clip(m, -0.1, 0.1), track, 1.0)[0]
    assert clip["level_spread"] > 1.0
    halved = quality.score_track(lambda m, v, a: m - 0.5 * a, track, 1.0)[0]
    assert halved["level_spread"] == pytest.approx(0.0, abs=1e-6) and halved["si_sdri"] > 1.0


def test_summary_skips_null_tracks(quality):
    rows = [{"sdr": 1.0, "si_sdr": None, "si_sdri": 2.0}, {"sdr": 3.0, "si_sdr": None, "si_sdri": None}]
    summary = quality.summarize(rows)
    assert summary["median_sdr"] == 2.0 and summary["mean_si_sdri"] == 2.0
    assert summary["median_si_sdr"] is None and summary["tracks_scored_si_sdr"] == 0


def test_families_weigh_each_family_once(quality):
    rows = [{"voice": "big", "music": "m1", "si_sdri": v} for v in (10.0, 11.0, 12.0, 13.0, 14.0)]
    rows += [{"voice": "small", "music": "m2", "si_sdri": 2.0}, {"voice": "mid", "music": "m1", "si_sdri": 6.0}]
    out = quality.by_family(rows)
    assert out["families"]["voice"]["big"]["median_si_sdri"] == 12.0
    assert out["families"]["voice"]["big"]["tracks"] == 5
    assert out["median_si_sdri_over_voice_families"] == 6.0  # median of 12, 2, 6; the track median is 11
    assert set(out["families"]["music"]) == {"m1", "m2"}


def test_sets_keep_seen_voices_out_of_the_headline(quality):
    def src(role, package, conditions):
        return quality.Source(Path(f"{package}.wav"), role, package, package, "1", "x", conditions)
    sources = [src("acapella", "fresh", "unseen"), src("acapella", "familiar", "seen"),
               src("instrumental", "tune", "unseen"), src("instrumental", "same-game", "seen")]
    sets = quality.split_sets(sources)
    assert {s.package for s in sets["unseen"]} == {"fresh", "tune"}
    assert {s.package for s in sets["seen"]} == {"familiar", "tune", "same-game"}
    assert "seen" not in quality.split_sets(sources[:1] + sources[2:])


def test_conditions_come_from_the_spec(quality, tmp_path):
    spec = tmp_path / "spec.yaml"
    group = "{{name: {n}, set: eval, role: {r}, include: ['*']{c}}}"
    spec.write_text("packages:\n" + "".join(
        f"  - {{package: {p}, version: '1', sha256: {'a' * 64}, license: x, attribution: y, groups: [{group.format(n=n, r=r, c=c)}]}}\n"
        for p, n, r, c in (("voices-a", "v", "acapella", ", conditions: seen"), ("music-b", "m", "instrumental", ""))))
    assert quality.conditions_of(spec) == {("voices-a", "acapella"): "seen", ("music-b", "instrumental"): "unseen"}


def test_merging_keeps_old_rows_and_refuses_other_mixtures(quality, tmp_path):
    config = {"seed": 0, "tracks": 2, "mixtures": {"unseen": {"packages": {"voice": ["a"]}}}}
    old = {"config": config, "systems": {"model-a": {"median_sdr": 1.0}, "irm": {"median_sdr": 9.0}}}
    new = {"config": {**config, "mixtures": {"unseen": {"packages": {"voice": ["b"]}}}},
           "systems": {"irm": {"median_sdr": 10.0}}}
    merged = quality.merge_results(old, new, fresh=False, path=tmp_path / "q.json")
    assert merged["systems"] == {"model-a": {"median_sdr": 1.0}, "irm": {"median_sdr": 10.0}}
    assert quality.merge_results(old, new, fresh=True, path=tmp_path / "q.json") == new
    other = {**new, "config": {**config, "seed": 1}}
    with pytest.raises(quality.QualityError, match="--fresh"):
        quality.merge_results(old, other, fresh=False, path=tmp_path / "q.json")


def test_pairs_and_notes_parse(quality):
    assert quality.parse_pairs(["base=pretrained", "x=a=b.pt"], "--model") == {"base": "pretrained", "x": "a=b.pt"}
    with pytest.raises(quality.QualityError, match="--note"):
        quality.parse_pairs(["oops"], "--note")


def corpus_tracks(quality, folder: Path, clips: list[np.ndarray]) -> list:
    """Sources of one package, written as 44.1 kHz wav files (an empty array writes a file that cannot decode)."""
    import soundfile as sf

    tracks = []
    for n, clip in enumerate(clips):
        path = folder / f"t{n}.wav"
        if clip.size:
            sf.write(path, clip, quality.RATE, subtype="FLOAT")
        else:
            path.write_bytes(b"not audio")
        tracks.append(quality.Source(path, "acapella", f"pkg t{n}", "pkg", "1", "test"))
    return tracks


def test_sparse_package_falls_back_to_distinct_tracks(quality, tmp_path):
    rate, rng = quality.RATE, np.random.default_rng(0)
    clip = np.zeros((3 * rate, 2), np.float32)
    blocks = clip.reshape(-1, quality.block_frames(rate), 2)
    blocks[::2] = 0.1 * rng.standard_normal(blocks[::2].shape)  # half the blocks active: never 75-90 %
    tracks = corpus_tracks(quality, tmp_path, [clip, clip * 0.5, np.zeros(0), clip * 0.25])
    used: set[int] = set()
    for _ in range(3):
        excerpt, index = quality.pick_excerpt(tracks, 0, rate, (0.75, 0.9), rng, -1.0, used)
        assert not excerpt.in_range and excerpt.activity == pytest.approx(0.5, abs=0.05)
        assert excerpt.audio.shape == (rate, 2) and index not in used and index != 2  # t2 does not decode
        used.add(index)


def test_short_tracks_are_joined(quality, tmp_path):
    rate = quality.RATE
    clips = [(0.1 * np.random.default_rng(n).standard_normal((int(0.6 * rate), 2))).astype(np.float32)
             for n in range(3)]
    tracks = corpus_tracks(quality, tmp_path, clips)
    excerpt, index = quality.pick_excerpt(tracks, 1, rate, (0.9, 1.0), np.random.default_rng(0), -1.0, set())
    assert index == 1 and excerpt.titles == ("pkg t1", "pkg t2") and excerpt.in_range


def test_eval_digest_ignores_training_packages(quality, tmp_path):
    def spec(*entries: str) -> Path:
        path = tmp_path / f"spec{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text("packages:\n" + "".join(entries))
        return path
    entry = ("  - {{package: {p}, version: '1', sha256: {h}, license: x, attribution: y, "
             "groups: [{{name: g, set: {s}, role: acapella, include: ['{inc}']}}]}}\n")
    evals = entry.format(p="ev", h="a" * 64, s="eval", inc="*")
    base = quality.eval_digest(spec(evals))
    assert quality.eval_digest(spec(evals, entry.format(p="tr", h="b" * 64, s="train", inc="*"))) == base
    assert quality.eval_digest(spec(entry.format(p="ev", h="a" * 64, s="eval", inc="*.wav"))) != base
    assert quality.eval_digest(spec(entry.format(p="ev", h="c" * 64, s="eval", inc="*"))) != base
    zipped = entry.replace("include:", "archive: a.pk3, include:")
    assert quality.eval_digest(spec(zipped.format(p="ev", h="a" * 64, s="eval", inc="*"))) != base


def test_the_committed_results_were_scored_on_the_specs_eval_set(quality):
    """quality.json's rows merge only while the spec's eval part digests as it did when they were scored."""
    root = Path(__file__).resolve().parents[2]
    results = json.loads((root / "benchmarks/results/quality.json").read_text())
    digest = quality.eval_digest(root / "sources/debian-corpus.yaml")
    assert {s["eval_spec_sha256"] for s in results["config"]["sets"].values()} == {digest}


def test_a_system_scored_on_the_seen_set_only_keeps_it_apart(quality):
    rows = [{"track": "00", "voice": {"package": "v"}, "music": {"package": "m"}}]
    row = quality.score_system("mixture", quality.BASELINE_SYSTEMS["mixture"], {"seen": ([noisy_track()], rows)}, 1.0)
    assert "median_si_sdri" not in row and row["seen"]["median_si_sdri"] == 0.0
    text = quality.table({"mixture": row})
    assert "-- seen conditions" in text and "-- unseen conditions" not in text


def test_excerpts_lose_dc_and_rumble_but_keep_the_window_drawn_on_the_decoded_audio(quality, tmp_path):
    """Recipe 5: a voice riding on a DC offset and a 3 Hz rumble (as gcin-voice's and megaglest-data's do)
    is cut where recipe 4 cut it, and comes out with neither; its audible part is unchanged."""
    rate = quality.RATE
    speech = bursts(12.0, 3)
    t = np.arange(speech.shape[0])[:, None] / rate
    offset = (0.05 + 0.05 * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    tracks = corpus_tracks(quality, tmp_path, [speech + offset])
    excerpt, _ = quality.pick_excerpt(tracks, 0, 4 * rate, (0.75, 0.9), np.random.default_rng(5), -1.0, set())
    decoded = quality.prepared(tracks[0].path, rate, -1.0)
    start, _fraction, _miss = quality.choose_window(decoded, rate, 4 * rate, (0.75, 0.9), np.random.default_rng(5))
    assert excerpt.start == start
    window = decoded[start:start + 4 * rate]
    assert np.abs(window.mean(axis=0)).min() > 0.02  # what recipe 4 mixed
    assert np.abs(excerpt.audio.mean(axis=0)).max() < 1e-3
    source = speech + offset
    gain = float(np.sum(decoded * source) / np.sum(source ** 2))  # prepared() scaled the file by one gain
    audible = gain * speech[start:start + 4 * rate]
    error = excerpt.audio - audible
    assert np.sqrt(np.mean(error ** 2)) < 0.05 * np.sqrt(np.mean(audible ** 2))
