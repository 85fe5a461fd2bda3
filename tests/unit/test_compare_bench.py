"""benchmarks/compare.py: candidates against the shipped model, paired on the same mixtures, and the ship rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests import benchmark_modules

MIXTURES = {"recipe": 4, "set": "unseen", "seed": 0, "tracks": 6, "seconds": 20.0}


@pytest.fixture(scope="module")
def compare():
    return benchmark_modules.load("compare")


def system(si_sdri: list[float], leak: list[float], passes: list[float]) -> dict:
    """A quality.py system over six tracks, three of voice family a and three of b, its medians computed."""
    rows = [{"track": f"{i:02d}", "voice": "a" if i < 3 else "b", "music": "m", "si_sdri": s, "sdr": s - 0.5,
             "pass_through": p, "leak": k} for i, (s, k, p) in enumerate(zip(si_sdri, leak, passes))]
    families = [float(np.median(si_sdri[:3])), float(np.median(si_sdri[3:]))]
    return {"median_si_sdri": float(np.median(si_sdri)), "median_si_sdri_over_voice_families": float(np.median(families)),
            "median_sdr": float(np.median(si_sdri)) - 0.5, "median_pass_through": float(np.median(passes)),
            "median_leak": float(np.median(leak)), "per_track": rows, "real_time_factor": 40.0}


def results(path: Path, systems: dict, **mixtures) -> Path:
    path.write_text(json.dumps({"config": {"sets": {"unseen": {**MIXTURES, **mixtures}}}, "systems": systems}))
    return path


BASE = system([5, 6, 7, 8, 9, 10], [-20, -22, -24, -26, -28, -30], [60] * 6)


def test_a_candidate_better_on_every_mixture_passes_with_an_interval_above_zero(compare, tmp_path):
    better = system([5.5, 6.3, 7.4, 8.2, 9.6, 10.1], [-21, -23, -25, -27, -29, -31], [61] * 6)
    out = compare.compare(compare.merged_systems([results(tmp_path / "r.json", {"base": BASE, "new": better})]),
                          "base", ["new"])["candidates"]["new"]
    assert out["passes"] and out["failed"] == []
    si = out["paired"]["si_sdri"]
    assert si["better"] == si["tracks"] == 6 and si["mean_change"] == pytest.approx(0.35, abs=1e-3)
    assert 0 < si["interval_90"][0] <= si["mean_change"] <= si["interval_90"][1]
    assert out["paired"]["leak"]["better"] == 6 and out["paired"]["leak"]["mean_change"] == pytest.approx(-1.0)
    assert out["si_sdri_change_by_voice_family"] == pytest.approx({"a": 0.4, "b": 0.3}, abs=1e-3)
    assert out["median_rule"] == {"passes": True, "failed": []}


def test_the_rule_names_each_condition_a_candidate_fails(compare, tmp_path):
    # family a worse, family b better, the leak louder and the voice mostly lost
    worse = system([3.0, 4.0, 5.0, 9.0, 10.5, 12.0], [-10] * 6, [9.0] * 6)
    out = compare.compare(compare.merged_systems([results(tmp_path / "r.json", {"base": BASE, "new": worse})]),
                          "base", ["new"])["candidates"]["new"]
    assert not out["passes"] and not out["median_rule"]["passes"]
    earlier = " | ".join(out["median_rule"]["failed"])
    assert "median_si_sdri +7.00 < +7.50" in earlier and "median_si_sdri_over_voice_families +7.25 < +7.50" in earlier
    assert "median_leak -10.00 > -25.00" in earlier and "median_pass_through 9.0 < 15.0" in earlier
    assert out["paired"]["si_sdri"]["better"] == 3
    assert out["si_sdri_change_by_voice_family"] == pytest.approx({"a": -2.0, "b": 1.5})
    failed = " | ".join(out["failed"])
    assert "voice family a mean change -2.00" in failed and "voice family b" not in failed
    assert "si_sdri mean change interval starts at" in failed and "median_si_sdri " not in failed
    assert "median_leak -10.00 > -25.00" in failed and "leak mean change interval starts at" in failed
    assert "median_pass_through 9.0 < 15.0" in failed and "real_time_factor" not in failed


def test_the_ship_rule_can_pass_what_the_median_of_family_medians_fails(compare, tmp_path):
    # family a's median drops by 0.1 dB (two families: their mean falls), yet four of six mixtures gain and one ties
    mixed = system([5.3, 5.9, 7.4, 8.5, 9.0, 10.5], [-21, -23, -25, -27, -29, -31], [60] * 6)
    out = compare.compare(compare.merged_systems([results(tmp_path / "r.json", {"base": BASE, "new": mixed})]),
                          "base", ["new"])["candidates"]["new"]
    assert out["passes"], out["failed"]
    assert out["median_rule"]["failed"] == ["median_si_sdri_over_voice_families +7.45 < +7.50"]


def test_a_leak_median_worse_but_on_target_and_not_clearly_louder_passes(compare, tmp_path):
    # every mixture gains; the leak is 2 dB louder on four mixtures, 15 dB quieter on two, and under -25 dB
    quiet = system([5, 6, 7, 8, 9, 10], [-30, -32, -34, -36, -38, -40], [60] * 6)
    leakier = system([5.4, 6.4, 7.4, 8.4, 9.4, 10.4], [-28, -30, -32, -34, -53, -55], [60] * 6)
    out = compare.compare(compare.merged_systems([results(tmp_path / "r.json", {"base": quiet, "new": leakier})]),
                          "base", ["new"])["candidates"]["new"]
    assert out["median_change"]["median_leak"] > 0 and out["medians"]["median_leak"] <= -25
    assert out["passes"], out["failed"]
    assert any("median_leak" in f for f in out["median_rule"]["failed"])


@pytest.mark.parametrize("leak, speed, reason", [
    ([-19, -21, -23, -25, -27, -29], 40.0, "leak mean change interval starts at +1.00: clearly louder"),  # +1 dB
    ([-21, -23, -25, -27, -29, -31], 8.0, "real_time_factor 8.0 < 10.0"),
])
def test_a_clearly_louder_leak_or_a_slow_model_fails_the_ship_rule(compare, tmp_path, leak, speed, reason):
    faster_gain = {**system([5.5, 6.5, 7.5, 8.5, 9.5, 10.5], leak, [60] * 6), "real_time_factor": speed}
    out = compare.compare(compare.merged_systems([results(tmp_path / "r.json", {"base": BASE, "new": faster_gain})]),
                          "base", ["new"])["candidates"]["new"]
    assert not out["passes"] and reason in out["failed"]
    assert all(f == reason or f.startswith("median_leak") for f in out["failed"])


def test_results_of_other_mixtures_or_clashing_names_are_refused(compare, tmp_path):
    first = results(tmp_path / "a.json", {"base": BASE})
    with pytest.raises(compare.CompareError, match="seed"):
        compare.merged_systems([first, results(tmp_path / "b.json", {"new": BASE}, seed=1)])
    clash = system([1, 2, 3, 4, 5, 6], [-20] * 6, [60] * 6)
    with pytest.raises(compare.CompareError, match="'base'"):
        compare.merged_systems([first, results(tmp_path / "c.json", {"base": clash})])
    merged = compare.merged_systems([first, results(tmp_path / "d.json", {"base": {**BASE, "real_time_factor": 9}})])
    assert list(merged) == ["base"]  # the same scores timed again are the same system
    with pytest.raises(compare.CompareError, match="there are: base"):
        compare.compare(merged, "base", ["nothing"])


def test_the_cli_writes_json_and_says_what_is_wrong(compare, tmp_path, capsys):
    path = results(tmp_path / "r.json", {"base": BASE, "same": BASE})
    assert compare.main([str(path), "--reference", "base", "--candidates", "same", "--out", str(tmp_path / "c.json")]) == 0
    written = json.loads((tmp_path / "c.json").read_text())["candidates"]["same"]
    assert written["failed"] == ["si_sdri mean change interval starts at +0.00, not above 0"]  # no gain: kept
    assert written["median_rule"]["passes"] and written["paired"]["si_sdri"] == {
        "tracks": 6, "better": 0, "mean_change": 0.0, "interval_90": [0.0, 0.0]}
    assert compare.main([str(tmp_path / "missing.json"), "--reference", "base", "--candidates", "x"]) == 2
    assert "missing.json" in capsys.readouterr().err


@pytest.mark.parametrize("files", [("quality.json",), ("quality-recipe4.json", "quality-gpu.json")])
def test_the_committed_results_pair_on_the_same_mixtures(compare, repo_root, files):
    folder = repo_root / "benchmarks" / "results"
    systems = compare.merged_systems([folder / f for f in files])
    out = compare.compare(systems, "base_v12", ["soup_gftc_s34"])["candidates"]["soup_gftc_s34"]
    assert out["paired"]["si_sdri"]["tracks"] == 24
    assert set(out["si_sdri_change_by_voice_family"]) == {"gcin-voice", "ktuberling-data", "megaglest-data"}


def test_results_of_two_recipes_are_not_paired(compare, repo_root):
    """recipe 5 removed the stems' DC offsets: its rows and recipe 4's are other mixtures."""
    folder = repo_root / "benchmarks" / "results"
    with pytest.raises(compare.CompareError, match="quality-gpu.json"):
        compare.merged_systems([folder / "quality.json", folder / "quality-gpu.json"])


def test_a_system_whose_medians_disagree_with_its_tracks_is_refused(compare, tmp_path):
    edited = system([5.5, 6.5, 7.5, 8.5, 9.5, 10.5], [-21, -23, -25, -27, -29, -31], [60] * 6)
    merged = compare.merged_systems([results(tmp_path / "r.json", {"base": BASE, "cand": edited})])
    assert compare.compare(merged, "base", ["cand"])["candidates"]["cand"]["passes"]
    edited = merged["cand"]
    edited["median_leak"] = -40.0  # a hand-edited median: the rows still say -26
    with pytest.raises(compare.CompareError, match=r"'cand'.*median_leak stored -40.0, per-track rows give -26.0000"):
        compare.compare(merged, "base", ["cand"])
    edited["median_leak"] = -26.0
    edited["median_si_sdri_over_voice_families"] = 9.0  # the families' medians are 6.5 and 9.5: 8.0
    with pytest.raises(compare.CompareError, match="median_si_sdri_over_voice_families stored 9.0"):
        compare.compare(merged, "base", ["cand"])
