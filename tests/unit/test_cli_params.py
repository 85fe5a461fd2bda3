"""One rule for `--params` in every command: a file named but absent is refused, naming it."""

from __future__ import annotations

import pytest

from vocalsep.cli.main import main

COMMANDS = {
    "separate": ["separate", "song.wav", "-o", "out"],
    "serve": ["serve", "-m", "models:/vocalsep@champion"],
    "stream": ["stream", "--seconds", "1"],
    "models": ["models"],
    "provenance": ["provenance", "pretrained"],
    "summary": ["summary"],
    "register-base": ["register-base"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_params_file_is_refused_by_name(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main([*COMMANDS[command], "--params", "typo.yaml"])
    err = capsys.readouterr().err
    assert code == 2 and "typo.yaml" in err and "Traceback" not in err
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "out").exists()  # nothing was done
