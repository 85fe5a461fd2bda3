"""The base model card's pieces: the quality table of the unseen-conditions benchmark and the augmentation line."""

from __future__ import annotations

import json

from vocalsep.publish import augment_summary, quality_table


def test_quality_table_shows_unseen_headline_behaviour_and_seen_rows(tmp_path):
    results = tmp_path / "quality.json"
    results.write_text(json.dumps({"systems": {
        "base": {"median_si_sdri": 7.5, "median_si_sdri_over_voice_families": 6.25, "median_sdr": 5.0,
                 "median_pass_through": 15.0, "median_leak": -25.5, "median_level_spread": 0.5,
                 "seen": {"median_si_sdri": 11.0}, "note": "new"},
        "silence": {"median_si_sdri": None, "median_leak": -120.0, "note": None},
    }}))
    rows = quality_table(results)
    assert rows[0].count("|") == rows[1].count("|") == rows[2].count("|")
    assert rows[2] == "| base | +7.50 | +6.25 | +5.00 | +15.00 | -25.50 | +0.50 | +11.00 | new |"
    assert rows[3].startswith("| silence | n/a |") and "-120.00" in rows[3] and rows[3].endswith("|  |")
    assert quality_table(tmp_path / "missing.json") == ["(no quality benchmark results given)"]


def test_augment_summary_lists_what_fires():
    data = {"augment": {"pitch_shift": 0.3, "speed": 0.0, "pitch_semitones": [-4.0, 4.0], "reverb": 0.25},
            "voice_alone": 0.1, "music_alone": 0.0}
    assert augment_summary(data) == "pitch_shift 0.3, reverb 0.25, voice_alone 0.1"
    assert augment_summary({"augment": {"pitch_shift": 0.0}}) == "none"
