"""The separation core: chunked output == one whole-input pass; the `vocalsep separate` CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalsep.config import SeparateParams, params_to_dict
from vocalsep.errors import VocalsepError
from vocalsep.model import VocNet, model_kwargs, save_checkpoint
from vocalsep.separate import (
    chunk_offsets,
    context_window,
    fade_window,
    overlap_add,
    separate,
    separate_with_params,
)
from vocalsep.loading import load_separator
from vocalsep.cli.separate import main as separate_main
from vocalsep.cli.separate import output_names

KWARGS = {"filters": 8, "skip_filters": 8, "layers": 6, "layers_per_stack": 6}
MODEL_RATE = 16000


@pytest.fixture(scope="module")
def model() -> VocNet:
    torch.manual_seed(0)
    return VocNet(**KWARGS).eval()


def whole(model: VocNet, mixture: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(mixture)[None])[0].numpy()


@pytest.mark.parametrize("length", [1, 37, 100, 128, 129, 1000, 2345])
def test_chunked_equals_whole_input(model, length):
    mixture = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    chunked = separate(model, mixture, chunk_samples=128, overlap_samples=20, batch_size=3)
    assert chunked.shape == mixture.shape and chunked.dtype == np.float32
    assert np.abs(chunked - whole(model, mixture)).max() < 1e-4


def test_chunks_smaller_than_the_receptive_field_still_match(model):
    mixture = np.random.default_rng(1).standard_normal((2, 500)).astype(np.float32)
    assert model.receptive_field > 16
    chunked = separate(model, mixture, chunk_samples=16, overlap_samples=4, batch_size=64)
    assert np.abs(chunked - whole(model, mixture)).max() < 1e-4


def test_context_can_be_given_for_models_without_the_property(model):
    wrapped = torch.nn.Sequential(model)  # as an exported graph: no `.context`
    mixture = np.random.default_rng(4).standard_normal((2, 700)).astype(np.float32)
    chunked = separate(wrapped, mixture, chunk_samples=64, overlap_samples=8, batch_size=4, context=model.context)
    assert np.abs(chunked - whole(model, mixture)).max() < 1e-4


def test_silence_in_gives_silence_out_for_the_default_network(real_params):
    torch.manual_seed(0)
    assert real_params.model.name == "VocNet"
    kwargs = model_kwargs("VocNet", params_to_dict(real_params)["model"])
    assert kwargs["bias"] is False  # the default profile is the silence-preserving network
    model = VocNet(**kwargs).eval()
    silence = np.zeros((2, 20000), dtype=np.float32)
    vocals = separate(model, silence, chunk_samples=4096, overlap_samples=512, batch_size=2)
    assert vocals.shape == silence.shape and not vocals.any()


def test_silence_gives_the_whole_input_silence_response(model):
    silence = np.zeros((2, 1500), dtype=np.float32)
    chunked = separate(model, silence, chunk_samples=256, overlap_samples=32, batch_size=2)
    assert np.isfinite(chunked).all()
    assert np.abs(chunked - whole(model, silence)).max() < 1e-4


def test_separate_with_params_converts_seconds(model):
    mixture = np.random.default_rng(2).standard_normal((2, 3000)).astype(np.float32)
    params = SeparateParams(chunk_seconds=0.05, overlap_seconds=0.01, batch_size=2, device="auto")
    out = separate_with_params(model, mixture, 8000, params)
    assert np.abs(out - whole(model, mixture)).max() < 1e-4


@pytest.mark.parametrize("length,chunk,hop", [(1, 10, 5), (10, 10, 3), (11, 10, 3), (1000, 128, 100), (777, 64, 64)])
def test_chunk_offsets_cover_the_input_exactly(length, chunk, hop):
    starts = chunk_offsets(length, chunk, hop)
    size = min(chunk, length)
    covered = np.zeros(length, dtype=int)
    for s in starts:
        assert 0 <= s and s + size <= length
        covered[s:s + size] += 1
    assert covered.min() >= 1
    assert starts == sorted(set(starts)) and starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= hop for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("chunk,overlap", [(100, 0), (100, 10), (100, 50), (7, 3)])
def test_fade_weights_normalise_to_one(chunk, overlap):
    length = 1003
    weights = fade_window(chunk, overlap)
    assert weights.shape == (chunk,) and (weights > 0).all() and weights.max() <= 1
    ones = np.ones((2, length), dtype=np.float32)
    output, weight_sum = np.zeros_like(ones), np.zeros(length, dtype=np.float32)
    for s in chunk_offsets(length, chunk, chunk - min(overlap, chunk // 2)):
        overlap_add(output, weight_sum, ones[:, s:s + chunk], s, weights)
    np.testing.assert_allclose(output / weight_sum, 1.0, rtol=1e-6)


def test_context_window_keeps_the_context_inside_the_song():
    context = (31, 32)
    for start in [0, 5, 40, 500, 872]:
        w, size = context_window(start, 128, 1000, context)
        assert 0 <= w and w + size <= 1000 and size == 128 + 63
        assert start - w >= min(start, context[0])
        assert (w + size) - (start + 128) >= min(1000 - start - 128, context[1])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, KWARGS, params={"audio": {"sample_rate": MODEL_RATE}}, git_sha="test")
    return path


def test_load_separator_reads_the_model_rate(checkpoint, model):
    loaded, rate = load_separator(str(checkpoint), "cpu")
    assert rate == MODEL_RATE
    mixture = np.random.default_rng(3).standard_normal((2, 300)).astype(np.float32)
    assert np.array_equal(whole(loaded, mixture), whole(model, mixture))


def tone(rate: int, channels: int, seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    sides = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)
             for c in range(channels)]
    return np.stack(sides, axis=1).astype(np.float32)


@pytest.mark.slow
def test_cli_writes_stems_at_the_input_rate_and_reports_bad_files(tmp_path, checkpoint, capsys):
    inputs = []
    for ext, rate, channels in [("wav", 22050, 1), ("flac", 48000, 2), ("mp3", 22050, 1), ("mp3", 48000, 2)]:
        path = tmp_path / f"{ext}_{rate}_{channels}.{ext}"
        sf.write(path, tone(rate, channels), rate)
        inputs.append(path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.flac"
    out = tmp_path / "out"
    args = [str(p) for p in [inputs[0], missing, *inputs[1:], empty]]
    code = separate_main(args + ["-o", str(out), "--model", str(checkpoint), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "missing.flac" in err and "not found" in err
    assert "empty.wav" in err and "empty" in err.split("empty.wav", 1)[1].splitlines()[0]
    for path in inputs:
        mixture, rate = sf.read(path, dtype="float32", always_2d=True)
        stems = {name: sf.read(out / path.stem / f"{name}.wav", dtype="float32", always_2d=True)
                 for name in ("vocals", "accompaniment")}
        for stem, stem_rate in stems.values():
            assert stem_rate == rate and stem.shape == mixture.shape
        vocals, accompaniment = stems["vocals"][0], stems["accompaniment"][0]
        np.testing.assert_allclose(vocals + accompaniment, mixture, atol=1e-5)
        assert np.abs(vocals).max() > 0


def test_inputs_that_share_a_stem_keep_their_parent_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = output_names([Path(p) for p in ("a/mixture.flac", "b/mixture.flac", "x/a/m.wav", "y/a/m.wav",
                                            "other.wav", "other.wav")])
    assert names == ["a/mixture", "b/mixture", "x/a/m", "y/a/m", "other", "other-2"]


def test_a_name_pattern_sets_the_folders_and_a_bad_field_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = [Path("album1/intro.mp3"), Path("album2/intro.mp3")]
    assert output_names(paths, "{index:02d}-{parent}-{stem}") == ["01-album1-intro", "02-album2-intro"]
    assert output_names(paths, "{parent}") == ["album1", "album2"]
    assert output_names(paths, "take") == ["take", "take-2"]
    with pytest.raises(VocalsepError, match=r"--name '\{song\}'.*\{stem\}"):
        output_names(paths, "{song}")


def test_cli_exits_1_when_the_only_file_is_missing(tmp_path, checkpoint, capsys):
    code = separate_main([str(tmp_path / "nope.wav"), "-o", str(tmp_path / "out"), "--model", str(checkpoint)])
    assert code == 1 and "nope.wav" in capsys.readouterr().err
    assert not (tmp_path / "out" / "nope").exists()


def test_cli_reports_a_missing_model_in_one_line(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(8000, 2), 8000)
    code = separate_main([str(wav), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "none.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "none.pt" in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_an_output_folder_under_a_file_before_any_work(tmp_path, checkpoint, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(8000, 2), 8000)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where the output folder would go")
    for out in (blocker, blocker / "stems"):
        code = separate_main([str(wav), "-o", str(out), "--model", str(checkpoint)])
        err = capsys.readouterr().err
        assert code == 2 and "a file, not a folder" in err and str(out) in err
        assert "Traceback" not in err and "model:" not in err  # refused before the model was loaded


def test_cli_writes_every_input_it_can_when_one_output_folder_is_blocked(tmp_path, checkpoint, capsys):
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    for path in (first, second):
        sf.write(path, tone(8000, 2), 8000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "first").write_text("a file named like first's stem folder")
    code = separate_main([str(first), str(second), "-o", str(out), "--model", str(checkpoint)])
    err = capsys.readouterr().err
    assert code == 1 and "first.wav: cannot write the stems" in err
    assert (out / "second" / "vocals.wav").is_file() and (out / "second" / "accompaniment.wav").is_file()


def test_cli_says_a_folder_without_audio_holds_none(tmp_path, checkpoint, capsys):
    folder = tmp_path / "album"
    folder.mkdir()
    (folder / "notes.txt").write_text("not audio")
    code = separate_main([str(folder), "-o", str(tmp_path / "out"), "--model", str(checkpoint)])
    err = capsys.readouterr().err
    assert code == 1 and f"{folder}: folder holds no audio files" in err and "not found" not in err


@pytest.mark.parametrize("spec", ["https://example.org/model.pt", "s3://bucket/best.pt", "file:///tmp/best.pt"])
def test_cli_names_the_model_specs_it_accepts_for_a_url(tmp_path, spec, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(8000, 2), 8000)
    code = separate_main([str(wav), "-o", str(tmp_path / "out"), "--model", spec])
    err = capsys.readouterr().err
    assert code == 2 and f"{spec}: a {spec.split(':')[0]}: URL is not a model spec" in err
    assert "models:/NAME@ALIAS" in err and "https:/example" not in err.replace(spec, "")


@pytest.mark.parametrize("stride", [64, 100])
@pytest.mark.parametrize("chunk", [128, 130, 1000])
def test_context_window_starts_on_the_stride_and_keeps_the_context(stride, chunk):
    length, context = 5003, (300, 257)
    sizes = set()
    for start in chunk_offsets(length, chunk, chunk - 16):
        w, size = context_window(start, chunk, length, context, stride)
        assert w % stride == 0 and 0 <= w and w + size <= length
        assert start - w >= min(start, context[0])
        assert (w + size) - (start + chunk) >= min(length - start - chunk, context[1])
        if w + size < length:
            sizes.add(size)
    assert len(sizes) == 1  # windows not cut by the song's end stack into one batch


def test_context_window_of_a_song_shorter_than_chunk_and_context_is_the_song():
    assert context_window(0, 100, 450, (200, 200), 64) == (0, 450)
    assert context_window(50, 100, 450, (200, 200), 64) == (0, 450)


def test_same_size_splits_runs_of_equal_window_length_in_order():
    from vocalsep.separate import same_size

    group = [(0, (0, 10)), (5, (0, 10)), (9, (4, 10)), (12, (8, 7)), (14, (10, 5)), (15, (10, 5))]
    runs = list(same_size(group))
    assert [item for run in runs for item in run] == group
    assert [[start for start, _ in run] for run in runs] == [[0, 5, 9], [12], [14, 15]]
    assert list(same_size([])) == []
