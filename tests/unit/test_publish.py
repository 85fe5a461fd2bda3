"""The base model card's pieces: the quality table of the unseen-conditions benchmark and the augmentation line."""

from __future__ import annotations

import json

from vocalsep.base_model.publish import augment_summary, family_tables, quality_table


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


def test_family_tables_give_each_voice_and_music_family_of_every_system(tmp_path):
    def fam(si, passes, leak):
        return {"median_si_sdri": si, "median_pass_through": passes, "median_leak": leak, "tracks": 8}
    results = tmp_path / "quality.json"
    results.write_text(json.dumps({"systems": {
        "base": {"families": {"voice": {"gcin": fam(6.29, 63.13, -28.92), "kt": fam(9.42, 75.9, -18.59)},
                              "music": {"moh": fam(6.24, None, -13.8)}}},
        "silence": {"families": {"voice": {"gcin": fam(None, None, -120.0)}, "music": {}}},
        "old": {"median_si_sdri": 1.0},  # scored before families existed: no row
    }}))
    lines = family_tables(results)
    voice = lines.index("| system | gcin | kt |")
    assert lines[voice + 2] == "| base | +6.29 / +63.13 / -28.92 | +9.42 / +75.90 / -18.59 |"
    assert lines[voice + 3] == "| silence | n/a / n/a / -120.00 | n/a / n/a / n/a |"
    music = lines.index("| system | moh |")
    assert lines[music + 2] == "| base | +6.24 / -13.80 |" and lines[music + 3] == "| silence | n/a / n/a |"
    assert not any(line.startswith("| old") for line in lines)
    assert family_tables(tmp_path / "missing.json") == []


def test_augment_summary_lists_what_fires():
    data = {"augment": {"pitch_shift": 0.3, "speed": 0.0, "pitch_semitones": [-4.0, 4.0], "reverb": 0.25},
            "voice_alone": 0.1, "music_alone": 0.0}
    assert augment_summary(data) == "pitch_shift 0.3, reverb 0.25, voice_alone 0.1"
    assert augment_summary({"augment": {"pitch_shift": 0.0}}) == "none"


def test_a_live_checkpoint_is_published_with_its_lookahead_and_a_card_that_says_so():
    import torch

    from vocalsep.model import HybridVocNet
    from vocalsep.base_model.publish import _heading, lookahead_ms

    kwargs = {"filters": 8, "skip_filters": 8, "layers": 4, "layers_per_stack": 4, "n_fft": 1024, "hop": 256,
              "wave_filters": 8, "wave_stride": 64}
    def ckpt(ahead: int) -> dict:
        model = HybridVocNet(**kwargs, lookahead_frames=ahead)
        return {"class": "HybridVocNet", "kwargs": {**kwargs, "lookahead_frames": ahead},
                "state": model.state_dict(), "params": {"audio": {"sample_rate": 44100}}}

    torch.manual_seed(0)
    live, offline = lookahead_ms(ckpt(0)), lookahead_ms(ckpt(-1))
    assert 20 < live < 60 < offline  # STFT and fold: tens of ms; centred blocks: far more
    heading = "\n".join(_heading({"class": "HybridVocNet", "parameters": 1000, "sample_rate": 44100,
                                  "lookahead_ms": live}))
    assert "low-latency" in heading and f"{live:.0f} ms ahead" in heading and "vocalsep stream" in heading


def test_the_card_says_what_a_weight_average_and_a_last_checkpoint_are_instead_of_printing_missing_steps():
    from vocalsep.base_model.publish import steps_line

    soup = steps_line({"averaged_from": ["a.pt", "b.pt"], "average_weights": [1.0, 1.0]})
    assert "weight average" in soup and "2 checkpoints" in soup and "None" not in soup and "nan" not in soup
    trained = steps_line({"step": 3200, "epoch": 15, "val_si_sdr": 10.6})
    assert trained == "- steps: 3200 (best epoch 15), validation SI-SDR 10.60 dB"
    last = steps_line({"step": 2800, "epoch": 14, "progress": {"val": [{"step": 2600, "si_sdr": 10.4},
                                                                       {"step": 2800, "si_sdr": 10.52}]}})
    assert last == "- steps: 2800 (the last checkpoint, after epoch 14), validation SI-SDR 10.52 dB at step 2800"
