"""`vocalsep summary`: the lines `make run` ends with."""

import json
import pathlib

from vocalsep.cli.summary import registry_decision, summary_lines

def record(**overrides):
    base = {"registered_model": "vocalsep", "version": "3", "champion_version": "3", "decision": "champion",
            "metric": "si_sdr", "new_metric": 5.25, "champion_metric": 4.5, "previous_champion_version": "2"}
    return {**base, **overrides}

def test_champion_decision_names_versions_and_both_numbers():
    line = registry_decision(record())
    assert "version 3 is now champion" in line and "5.25" in line and "version 2 (4.50 dB)" in line

def test_first_champion_says_there_was_none():
    line = registry_decision(record(version="1", champion_version="1", champion_metric=None,
                                    previous_champion_version=None))
    assert "version 1 is now champion" in line and "no champion before it" in line

def test_challenger_decision_says_champion_stays():
    line = registry_decision(record(decision="challenger", champion_version="2", new_metric=3.0))
    assert "version 3 is challenger" in line and "champion version 2 (4.50 dB)" in line

def test_the_shipped_base_model_is_named_among_the_rivals_and_as_holder():
    won = registry_decision(record(base_version="1", base_metric=4.75))
    assert "beats version 2 (4.50 dB) and the shipped base model, version 1 (4.75 dB)" in won
    held = registry_decision(record(decision="challenger", champion_version="1", base_version="1", base_metric=6.0,
                                    new_metric=3.0))
    assert "does not beat the shipped base model, version 1 (6.00 dB)" in held
    first = registry_decision(record(version="2", champion_version="2", champion_metric=None,
                                     previous_champion_version=None, base_version="1", base_metric=1.0))
    assert "beats the shipped base model, version 1 (1.00 dB)" in first

def test_summary_marks_missing_outputs_and_reads_metrics(tmp_params):
    metrics = tmp_params.paths.metrics
    lines = "\n".join(summary_lines(tmp_params))
    assert "-- checkpoints" in lines and "test set medians" not in lines

    pathlib.Path(metrics).mkdir(parents=True)
    (pathlib.Path(metrics) / "eval.json").write_text(json.dumps(
        {"sdr": 1.5, "si_sdr": 2.25, "si_sdri": 3.0, "mixture_sdr": 0.5, "irm_sdr": 9.5, "irm_si_sdr": 9.25,
         "tracks": 4}))
    pathlib.Path(tmp_params.paths.export).mkdir(parents=True)
    (pathlib.Path(tmp_params.paths.export) / "registry.json").write_text(json.dumps(record()))
    lines = "\n".join(summary_lines(tmp_params))
    assert "over 4 tracks: sdr 1.50 dB, si_sdr 2.25 dB, si_sdri 3.00 dB, mixture_sdr 0.50 dB" in lines
    assert "ideal-ratio-mask oracle (the target to beat): si_sdr 9.25 dB, sdr 9.50 dB" in lines
    assert "registry: vocalsep version 3 is now champion" in lines
    assert "models:/vocalsep@champion" in lines
    assert "vocalsep serve -m models:/vocalsep@champion" in lines  # the entry point with request limits
    assert "eval/index.html" in lines and "vocalsep provenance models:/vocalsep@champion" in lines


def test_cli_reports_a_bad_params_file_in_one_line(tmp_path, capsys):
    from vocalsep.cli.main import main

    assert main(["summary", "--params", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.yaml" in err and "not found" in err


def test_the_summarys_separate_command_is_the_readmes(tmp_params):
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = next(text for text in summary_lines(tmp_params) if text.startswith("Separate:"))
    command = line.removeprefix("Separate:").strip().split("   ")[0]
    assert command.startswith("vocalsep separate") and command in readme
