"""The served pyfunc, the exported graphs and the promotion rule, in-process against a temporary MLflow store."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from mlflow.exceptions import MlflowException

from tests.serving_helpers import RATE, TINY, tiny_params, write_testset
from vocalsep import registry
from vocalsep.config import params_to_dict
from vocalsep.errors import StageError, VocalsepError
from vocalsep.model import VocNet, load_checkpoint, load_model, save_checkpoint
from vocalsep.separate import separate_with_params
from vocalsep.registry import beats_champion, checkpoint_from_uri
from vocalsep.serving.pyfunc import AUDIO_PARAM, VOCALS_KEY, encode_wav
from vocalsep.stages.export import (compare_graph, export_onnx, export_torchscript, read_eval_metrics,
                                    register)



def write_checkpoint(params, seed: int) -> Path:
    torch.manual_seed(seed)
    path = Path(params.paths.checkpoints) / "best.pt"
    save_checkpoint(path, VocNet(**TINY), TINY, params=params_to_dict(params))
    return path


def noise(frames: int, seed: int = 0) -> np.ndarray:
    """Quiet seeded stereo noise `(frames, 2)` float32."""
    return (0.1 * np.random.default_rng(seed).standard_normal((frames, 2))).astype(np.float32)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(params, checkpoint, registry record, pyfunc loaded from the store) for one registered tiny model."""
    root = tmp_path_factory.mktemp("serving")
    params = tiny_params(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
        checkpoint = write_checkpoint(params, seed=0)
        Path(params.paths.export).mkdir(parents=True)
        record = register(params, checkpoint, {"si_sdr": 1.0, "sdr": 0.5}, root / "dvc.lock")
        model = mlflow.pyfunc.load_model(record["model_uri"])
        yield params, checkpoint, record, model


@pytest.mark.slow
def test_the_logged_model_holds_no_pickle(served, monkeypatch):
    """Models from code: MLflow stores served_model.py, not a cloudpickle of the Python object."""
    params, _, record, _ = served
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=record["model_uri"]))
    names = {p.name for p in local.rglob("*") if p.is_file()}
    assert "served_model.py" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".cloudpickle"))], names
    for path in local.rglob("*.pt"):
        assert isinstance(load_checkpoint(path), dict)  # the weights load with the safe loader


@pytest.mark.slow
def test_every_version_carries_what_it_learned_from(served, monkeypatch, capsys):
    """Provenance: version tags, the model's artifact, `vocalsep provenance` and the served model's answer."""
    from tests.serving_helpers import SOURCES
    from vocalsep.provenance import main as provenance_main

    params, checkpoint, record, model = served
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    version = mlflow.MlflowClient().get_model_version(params.export.registered_model, record["version"])
    assert version.tags["sources"] == "2" and version.tags["licenses"] == "CC-BY-4.0, CC0-1.0"
    assert version.tags["git_sha"] == load_checkpoint(checkpoint)["git_sha"]
    assert version.tags["data_hash"] == "unknown"  # this test has no dvc.lock; the pipeline's does
    assert provenance_main([record["model_uri"]]) == 0
    printed = capsys.readouterr().out
    for source in SOURCES:
        assert all(source[k] in printed for k in ("url", "title", "license", "sha256")), source["id"]
    assert provenance_main([record["model_uri"], "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    answered = model.predict(np.zeros((4, 2), np.float32), params={"provenance": "json"})
    assert answered == {"provenance": document}
    assert [s["url"] for s in document["sources"]] == [s["url"] for s in SOURCES]
    assert document["sources"][0]["splits"] == ["train", "val", "test"]


def test_provenance_of_a_model_without_it_says_how_to_get_it(tmp_path, capsys):
    from vocalsep.provenance import main as provenance_main

    assert provenance_main([str(tmp_path)]) == 2
    assert "holds no provenance.json" in capsys.readouterr().err


@pytest.mark.slow
def test_provenance_reads_the_registry_of_the_params_file_it_is_given(served, tmp_path, monkeypatch, capsys):
    """`--params` picks the tracking store, as in `vocalsep separate`; a missing file is named, not ignored."""
    from vocalsep.provenance import main as provenance_main

    params, _, record, _ = served
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the default store would not hold the model
    assert provenance_main([record["model_uri"]]) == 2
    assert "cannot fetch the model from MLflow" in capsys.readouterr().err
    params_file = tmp_path / "mine.yaml"
    params_file.write_text(yaml.safe_dump(params_to_dict(params)))
    assert provenance_main([record["model_uri"], "--params", str(params_file), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["sources"]) == 2
    assert provenance_main([record["model_uri"], "--params", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: params file not found" in capsys.readouterr().err


def core(params, checkpoint: Path, mixture: np.ndarray) -> np.ndarray:
    """The separation core directly: `(frames, 2)` -> `(frames, 2)`."""
    return separate_with_params(load_model(checkpoint), mixture.T, params.audio.sample_rate, params.separate).T


@pytest.mark.slow
def test_array_input_equals_separation_core(served):
    params, checkpoint, _, model = served
    mixture = noise(1234)  # several chunks, the last one shorter
    vocals = model.predict(mixture)
    assert vocals.shape == mixture.shape and vocals.dtype == np.float32
    np.testing.assert_allclose(vocals, core(params, checkpoint, mixture), atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_base64_input_equals_separation_core(served, fmt):
    params, checkpoint, _, model = served
    mixture = noise(999, seed=1)
    buffer = io.BytesIO()
    sf.write(buffer, mixture, RATE, format=fmt, subtype="FLOAT" if fmt == "WAV" else "PCM_24")
    decoded_input, _ = sf.read(io.BytesIO(buffer.getvalue()), dtype="float32")
    request = {AUDIO_PARAM: base64.b64encode(buffer.getvalue()).decode()}
    answer = model.predict(np.zeros((1, 2), np.float32), params=request)
    vocals, rate = sf.read(io.BytesIO(base64.b64decode(answer[VOCALS_KEY])), dtype="float32")
    assert rate == RATE
    np.testing.assert_allclose(vocals, core(params, checkpoint, decoded_input), atol=1e-4, rtol=0)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_REQUESTS = {
    "three channels": (np.zeros((10, 3), np.float32), None, "shape"),
    "float64": (np.zeros((10, 2)), None, "dtype"),
    "too long": (np.zeros((RATE + 1, 2), np.float32), None, "inputs"),
    "not base64": (None, "%%% not base64 %%%", AUDIO_PARAM),
    "not audio": (None, _b64(b"these bytes are no audio file at all" * 20), AUDIO_PARAM),
    "audio too long": (None, encode_wav(np.zeros((2, 2 * RATE), np.float32), RATE), AUDIO_PARAM),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_requests_are_invalid_parameter_values(served, name):
    model = served[3]
    array, encoded, field = BAD_REQUESTS[name]
    with pytest.raises(MlflowException) as caught:
        if encoded is None:
            model.predict(array)
        else:
            model.predict(np.zeros((1, 2), np.float32), params={AUDIO_PARAM: encoded})
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert field in caught.value.message


@pytest.mark.slow
@pytest.mark.parametrize("bad", [np.array([["a", "b"]]), np.zeros((0, 2)), np.zeros(8), np.full((4, 2), np.nan)])
def test_own_validation_behind_the_schema(served, bad):
    """What the schema lets through to the model is still checked (the model may be called unwrapped)."""
    python_model = served[3].unwrap_python_model()
    with pytest.raises(MlflowException, match="inputs") as caught:
        python_model.predict(None, bad)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.slow
def test_checkpoint_from_uri_returns_the_registered_weights(served, monkeypatch):
    params, checkpoint, record, _ = served
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    for uri in (record["model_uri"], f"models:/{params.export.registered_model}@champion"):
        fetched = checkpoint_from_uri(uri, params.tracking)
        state = load_checkpoint(fetched)["state"]
        expected = load_checkpoint(checkpoint)["state"]
        assert all(torch.equal(state[k], expected[k]) for k in expected)
    with pytest.raises(VocalsepError, match="no-such-model"):
        checkpoint_from_uri("models:/no-such-model/1", params.tracking)


@pytest.mark.slow
def test_champion_moves_only_to_a_better_version(tmp_path, monkeypatch):
    params = tiny_params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    Path(params.paths.export).mkdir(parents=True)
    name = params.export.registered_model
    decisions = []
    for seed, si_sdr in [(0, 1.0), (1, 3.0), (2, 2.0)]:
        record = register(params, write_checkpoint(params, seed), {"si_sdr": si_sdr}, tmp_path / "dvc.lock")
        decisions.append((record["decision"], record["version"], record["champion_version"]))
    assert decisions == [("champion", "1", "1"), ("champion", "2", "2"), ("challenger", "3", "2")]
    assert record["new_metric"] == 2.0 and record["champion_metric"] == 3.0
    champion, tags = registry.version_by_alias(name, "champion")
    assert champion == "2" and float(tags["si_sdr"]) == 3.0
    assert registry.version_by_alias(name, "challenger")[0] == "3"


def test_a_first_version_that_cannot_win_becomes_challenger_without_crashing(tmp_path, monkeypatch):
    """No champion yet and a NaN metric: the version is kept as challenger and champion stays empty."""
    params = tiny_params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    Path(params.paths.export).mkdir(parents=True)
    record = register(params, write_checkpoint(params, 0), {"si_sdr": float("nan")}, tmp_path / "dvc.lock")
    assert (record["decision"], record["champion_version"]) == ("challenger", None)
    assert registry.version_by_alias(params.export.registered_model, "champion") is None


@pytest.mark.slow
def test_champion_is_rescored_when_the_test_set_changed(tmp_path, monkeypatch):
    """Scores from two test sets are never compared: the champion is separated and scored again."""
    import shutil

    from vocalsep.model import load_checkpoint
    from vocalsep.scoring import score_testset, summarize

    params = tiny_params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    Path(params.paths.export).mkdir(parents=True)
    lock = tmp_path / "dvc.lock"
    first = register(params, write_checkpoint(params, 0), {"si_sdr": 100.0}, lock)  # a high score on test set A
    assert first["decision"] == "champion"

    shutil.rmtree(params.paths.testset)  # the index stage rebuilt the test set from new sources
    write_testset(Path(params.paths.testset), seed=1)
    version_1 = load_checkpoint(write_checkpoint(params, 0))  # seeded: the weights registered as version 1
    on_new_set = summarize(score_testset(version_1, params)[0])["si_sdr"]
    second = register(params, write_checkpoint(params, 1), {"si_sdr": on_new_set + 0.5}, lock)
    assert (second["decision"], second["champion_rescored"]) == ("champion", True)
    assert second["champion_metric"] == pytest.approx(on_new_set, abs=1e-3)
    tags = mlflow.MlflowClient().get_model_version(params.export.registered_model, "1").tags
    assert float(tags["si_sdr"]) == pytest.approx(on_new_set, abs=1e-3)  # the score on the set it was compared on
    assert tags["si_sdr_previous_testset"] == "100.0" and tags["testset_hash"] == second_testset(params)

    third = register(params, write_checkpoint(params, 2), {"si_sdr": on_new_set}, lock)  # same set: tags suffice
    assert (third["decision"], third["champion_rescored"], third["champion_version"]) == ("challenger", False, "2")


def second_testset(params) -> str:
    from vocalsep.scoring import testset_hash

    return testset_hash(Path(params.paths.testset))


@pytest.mark.slow
def test_a_registry_that_cannot_be_read_stops_export_and_moves_no_alias(tmp_path, monkeypatch):
    """A failing registry (here: its SQLite database locked by another writer) is not "no champion"."""
    import sqlite3

    params = tiny_params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    Path(params.paths.export).mkdir(parents=True)
    lock = tmp_path / "dvc.lock"
    assert register(params, write_checkpoint(params, 0), {"si_sdr": 1.0}, lock)["decision"] == "champion"
    database = sqlite3.connect(params.tracking.uri.removeprefix("sqlite:///"), timeout=0.1, isolation_level=None)
    database.execute("BEGIN EXCLUSIVE")  # another process holds the store: every read fails
    try:
        with pytest.raises(VocalsepError, match=r"cannot read alias 'champion' of 'vocalsep'.*no alias was changed"):
            registry.version_by_alias(params.export.registered_model, "champion")
        with pytest.raises(VocalsepError, match=r"mlflow.db: .*database is locked"):
            register(params, write_checkpoint(params, 1), {"si_sdr": 50.0}, lock)
    finally:
        database.execute("ROLLBACK")
        database.close()
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(params.export.registered_model, "champion").version) == "1"
    assert [str(v.version) for v in client.search_model_versions(f"name='{params.export.registered_model}'")] == ["1"]


@pytest.mark.parametrize(("new", "champion", "wins"), [
    (1.0, None, True), (2.0, 1.0, True), (1.0, 1.0, False), (0.5, 1.0, False),
    (float("nan"), None, False), (1.0, float("nan"), True),
])
def test_promotion_rule(new, champion, wins):
    assert beats_champion(new, champion) is wins


@pytest.mark.slow
def test_exported_graphs_equal_eager(tmp_path):
    torch.manual_seed(0)
    model = VocNet(**TINY).eval()
    export_torchscript(model, tmp_path / "model.ts", 1e-4)
    export_onnx(model, tmp_path / "model.onnx", 1e-4)
    import onnxruntime

    mixture = torch.randn(3, 2, 777)  # a batch and a length neither export saw
    with torch.inference_mode():
        expected = model(mixture).numpy()
    scripted = torch.jit.load(str(tmp_path / "model.ts"))(mixture).detach().numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"mixture": mixture.numpy()})[0]
    np.testing.assert_allclose(scripted, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_out, expected, atol=1e-4, rtol=0)


def test_graph_check_rejects_a_mismatch():
    model = VocNet(**TINY).eval()
    with pytest.raises(StageError, match="exceeds export.tolerance"):
        compare_graph("broken", lambda x: model(x).detach().numpy() + 1e-3, model, [300], 1e-4)


def test_eval_metrics_must_hold_the_promotion_metric(tmp_path):
    path = tmp_path / "eval.json"
    with pytest.raises(StageError, match="evaluate"):
        read_eval_metrics(path, "si_sdr")
    path.write_text(json.dumps({"sdr": 1.5, "tracks": 4}))
    with pytest.raises(StageError, match="si_sdr"):
        read_eval_metrics(path, "si_sdr")
    assert read_eval_metrics(path, "sdr") == {"sdr": 1.5, "tracks": 4.0}


def test_data_hash_follows_the_training_data_only(tmp_path):
    from vocalsep.config import PathsParams
    from vocalsep.provenance import data_hash

    lock, paths = tmp_path / "dvc.lock", PathsParams()
    assert data_hash(paths, lock) == "unknown"

    def write(index_md5: str, audio_md5: str, code_md5: str = "c1") -> str:
        stages = {"normalize": {"outs": [{"path": "data/normalized", "md5": audio_md5}]},
                  "index": {"outs": [{"path": "data/index", "md5": index_md5}]},
                  "train": {"deps": [{"path": "src/vocalsep/stages/train.py", "md5": code_md5}]}}
        lock.write_text(json.dumps({"schema": "2.0", "stages": stages}))
        return data_hash(paths, lock)

    first = write("aaa.dir", "n1.dir")
    assert len(first) == 32
    assert write("aaa.dir", "n1.dir", code_md5="c2") == first  # code changes are not data changes
    assert write("bbb.dir", "n1.dir") != first and write("aaa.dir", "n2.dir") != first
    lock.write_text(json.dumps({"schema": "2.0", "stages": {"index": {"outs": [{"path": "data/index", "md5": "a"}]}}}))
    assert data_hash(paths, lock) == "unknown"  # the normalized audio is part of what the model heard


def test_a_long_upload_is_refused_from_its_header_before_decoding(monkeypatch):
    from vocalsep import audio
    from vocalsep.serving.pyfunc import decode_audio

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the whole file was decoded before its length was checked")

    monkeypatch.setattr(audio, "read_bytes", must_not_decode)
    long_wav = encode_wav(np.zeros((2, 3 * RATE), np.float32), RATE)
    with pytest.raises(MlflowException, match=r"audio_base64: 3\.0 s of audio is longer than the limit"):
        decode_audio(long_wav, max_seconds=1.0)


@pytest.mark.slow
def test_a_model_registered_before_the_serving_folder_still_loads(served, monkeypatch, tmp_path):
    """Versions logged before `vocalsep/serving/` existed run `from vocalsep.serving import VocalSeparator`
    from their entry file; in a process that has imported this vocalsep (as `vocalsep serve` has) it must load."""
    import vocalsep
    from vocalsep import provenance, registry, tracking
    from vocalsep.serving.pyfunc import AUDIO_PARAM, CHANNELS, CHECKPOINT_ARTIFACT, CONFIG_ARTIFACT, ServingConfig
    from vocalsep.serving.register import input_example

    params, checkpoint, _, _ = served
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.uri)
    old_entry = tmp_path / "served_model.py"
    old_entry.write_text("from mlflow.models import set_model\n\nfrom vocalsep.serving import VocalSeparator\n\n"
                         "set_model(VocalSeparator())\n")
    origin = provenance.write(provenance.load_for("pretrained"), tmp_path / provenance.FILE_NAME)
    config = ServingConfig.from_params(params, params.audio.sample_rate).write(tmp_path / "serving.json")
    with tracking.start_run(params.tracking, run_name="old-layout"):
        uri = registry.log_pyfunc_model(
            str(old_entry), artifacts={CHECKPOINT_ARTIFACT: str(checkpoint), CONFIG_ARTIFACT: str(config),
                                       provenance.ARTIFACT: str(origin)},
            signature=registry.serving_signature(CHANNELS, (AUDIO_PARAM, provenance.ARTIFACT)),
            input_example=input_example(params.audio.sample_rate), pip_requirements=[],
            code_paths=[str(Path(vocalsep.__file__).parent)])
    model = mlflow.pyfunc.load_model(uri)
    mixture = noise(800)
    assert model.predict(mixture).shape == mixture.shape
