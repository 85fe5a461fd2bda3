import dataclasses

import pytest
import yaml

from vocalsep.config import AugmentParams, Params, ParamsError, flatten, load_params, params_from_dict, params_to_dict


def test_repo_params_parse_and_round_trip(repo_root):
    params = load_params(repo_root / "params.yaml")
    assert params_from_dict(params_to_dict(params)) == params
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    # every key in params.yaml is a schema field (nothing silently ignored)
    assert set(flatten(raw)) == set(flatten(params_to_dict(params)))


def test_unknown_key_names_key_and_allowed():
    with pytest.raises(ParamsError) as err:
        params_from_dict({"train": {"epochz": 3}})
    assert "train.epochz" in str(err.value)
    assert "epochs" in str(err.value)


def test_unknown_section_rejected():
    with pytest.raises(ParamsError, match="trian"):
        params_from_dict({"trian": {}})


def test_bad_choice_lists_allowed_values():
    with pytest.raises(ParamsError) as err:
        params_from_dict({"train": {"loss": "l3"}})
    assert "train.loss" in str(err.value) and "'l1'" in str(err.value)


@pytest.mark.parametrize(
    "values, key",
    [
        ({"train": {"epochs": "four"}}, "train.epochs"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"audio": {"sample_rate": 44100.5}}, "audio.sample_rate"),
        ({"train": {"compile": "yes"}}, "train.compile"),
        ({"data": {"gain_db": [1.0]}}, "data.gain_db"),
        ({"data": {"segment_seconds": 5.0}}, "data.segment_seconds"),
        ({"index": {"val_fraction": 0.6, "test_fraction": 0.5}}, "index.val_fraction"),
        ({"train": {"lr": "1e-4"}}, "train.lr"),
        ({"download": {"backoff_seconds": -1}}, "download.backoff_seconds"),
        ({"index": {"testset_seconds": 0}}, "index.testset_seconds"),
        ({"index": {"testset_tracks": 0}}, "index.testset_tracks"),
        ({"evaluate": {"window_seconds": 0}}, "evaluate.window_seconds"),
        ({"validate": {"min_loudness_lufs": -5.0}}, "validate.min_loudness_lufs"),
        ({"normalize": {"clipping_level": 1.5}}, "normalize.clipping_level"),
        ({"model": {"hop": 100, "wave_stride": 64}}, "model.hop"),
        ({"model": {"n_fft": 2047}}, "model.n_fft"),
        ({"model": {"n_fft": 512, "hop": 512}}, "model.n_fft"),
        ({"model": {"n_fft": 256, "hop": 512}}, "model.n_fft"),
        ({"model": {"wave_filters": 0}}, "model.wave_filters"),
        ({"model": {"name": "UNet"}}, "model.name"),
        ({"train": {"warmup_steps": -1}}, "train.warmup_steps"),
        ({"train": {"init": "foo"}}, "train.init"),
        ({"train": {"loss": "bar"}}, "train.loss"),
        ({"corpus": {"set": "x"}}, "corpus.set"),
    ],
)
def test_wrong_values_name_the_field(values, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        params_from_dict(values)


@pytest.mark.parametrize("profile", ["params.yaml", "params-gpu.yaml", "params-real.yaml"])
def test_every_shipped_profile_loads_and_every_key_is_a_field(repo_root, profile):
    params = load_params(repo_root / profile)
    raw = yaml.safe_load((repo_root / profile).read_text())
    assert set(flatten(raw)) == set(flatten(params_to_dict(params)))


VOCNET_KEYS = {"filters", "skip_filters", "layers", "layers_per_stack", "kernel_size", "bias"}
HYBRID_KEYS = {"filters", "skip_filters", "layers", "layers_per_stack", "kernel_size", "n_fft", "hop", "wave_filters",
               "wave_stride", "global_context", "lookahead_frames", "refine_width", "stereo_features"}


@pytest.mark.parametrize("profile", ["params.yaml", "params-real.yaml"])
def test_model_kwargs_take_only_each_class_constructor_arguments(repo_root, profile):
    from vocalsep.model import build_model, model_kwargs

    section = params_to_dict(load_params(repo_root / profile))["model"]
    for name, keys in (("VocNet", VOCNET_KEYS), ("HybridVocNet", HYBRID_KEYS)):
        kwargs = model_kwargs(name, section)
        assert set(kwargs) == keys, name
        assert all(kwargs[k] == section[k] for k in keys)
    assert "n_fft" not in model_kwargs("VocNet", section) and "bias" not in model_kwargs("HybridVocNet", section)
    small = {**section, "filters": 4, "skip_filters": 4, "layers": 2, "wave_filters": 4}
    assert type(build_model("HybridVocNet", model_kwargs("HybridVocNet", small))).__name__ == "HybridVocNet"
    assert type(build_model("VocNet", model_kwargs("VocNet", small))).__name__ == "VocNet"


def test_model_kwargs_of_an_unknown_class_name_the_known_ones():
    from vocalsep.errors import VocalsepError
    from vocalsep.model import model_kwargs

    with pytest.raises(VocalsepError, match="UNet.*VocNet, HybridVocNet"):
        model_kwargs("UNet", {"filters": 4})


def test_params_are_frozen(real_params):
    with pytest.raises(dataclasses.FrozenInstanceError):
        real_params.train.epochs = 10


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_scientific_notation_string_gets_a_hint():
    with pytest.raises(ParamsError, match=r"write it as 0\.0001"):
        params_from_dict({"train": {"lr": "1e-4"}})


def test_dataclass_defaults_match_the_shipped_params(repo_root):
    """A key deleted from params.yaml falls back to the value the file ships with."""
    assert params_from_dict({}) == load_params(repo_root / "params.yaml")


@pytest.mark.parametrize("stage", ["demo", "corpus", "download", "normalize", "validate", "index", "train", "evaluate",
                                   "export"])
def test_every_stage_describes_itself_in_help(stage, capsys):
    import importlib

    with pytest.raises(SystemExit):
        importlib.import_module(f"vocalsep.stages.{stage}").main(["--help"])
    usage, after_usage = capsys.readouterr().out.split("\n\n", 1)
    assert f"python -m vocalsep.stages.{stage}" in usage
    assert not after_usage.startswith("options:")  # the stage's description comes before the options


@pytest.mark.parametrize("profile", ["params.yaml", "params-real.yaml", "params-live.yaml", "params-gpu.yaml"])
def test_dvc_set_param_rewrites_only_the_lines_it_sets(repo_root, tmp_path, profile):
    """`dvc exp run -S key=value` edits params.yaml through DVC's Hydra override code: every other line
    (lists, comments, blank lines between sections) must come back as it was."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    original = (repo_root / profile).read_text()
    path.write_text(original)
    apply_overrides(str(path), ["download.sources=sources/my-songs.yaml", "train.epochs=3"])
    changed = [(a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines()) if a != b]
    assert len(original.splitlines()) == len(path.read_text().splitlines())
    assert [a.split(":")[0].strip() for a, _ in changed] == ["sources", "epochs"], changed
    assert "sources/my-songs.yaml" in changed[0][1] and "epochs: 3" in changed[1][1]


def _ranged_fields():
    """(section, field, its Range) for every field that declares its allowed range beside it."""
    for section in dataclasses.fields(Params):
        for f in dataclasses.fields(section.default_factory):
            if "range" in f.metadata:
                yield section.name, f, f.metadata["range"]


def _outside(bounds, default):
    """A value just outside `bounds`, of the field's own type."""
    step = 1 if isinstance(default, int) else 0.5
    for bound, sign in ((bounds.ge, -1), (bounds.gt, 0), (bounds.le, 1), (bounds.lt, 0)):
        if bound is not None:
            return type(default)(bound + sign * step) if isinstance(default, int) else float(bound + sign * step)
    return None


@pytest.mark.parametrize("section, name", [(s, f.name) for s, f, _ in _ranged_fields()])
def test_every_declared_range_is_enforced_and_named(section, name):
    """A range written beside a field is the whole check: no second list of rules elsewhere."""
    f, bounds = next((f, r) for s, f, r in _ranged_fields() if (s, f.name) == (section, name))
    if isinstance(f.default, tuple):
        value, where = [f.default[1], f.default[0] - 1], f"{section}.{name}"  # reversed: low > high
    else:
        value, where = _outside(bounds, f.default), f"{section}.{name}"
    with pytest.raises(ParamsError, match=rf"^{where.replace('.', chr(92) + '.')}(\[\d\])?: must be"):
        params_from_dict({section: {name: value}})


def test_a_range_reads_as_a_sentence():
    from vocalsep.config import Range

    assert Range(ge=8000, le=192000, unit="Hz").describe() == "must be >= 8000 and <= 192000 Hz"
    assert Range(gt=0, le=1).describe() == "must be > 0 and <= 1"


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(AugmentParams) if "range" in f.metadata])
def test_every_augment_range_is_enforced_and_named_with_its_nested_key(name):
    f = next(f for f in dataclasses.fields(AugmentParams) if f.name == name)
    value = [f.default[1], f.default[0] - 1] if isinstance(f.default, tuple) else 1.5  # reversed pair; p > 1
    with pytest.raises(ParamsError, match=rf"^data\.augment\.{name}(\[\d\])?: must be"):
        params_from_dict({"data": {"augment": {name: value}}})


def test_an_out_of_range_augment_probability_is_rejected_naming_the_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  augment:\n    reverb: -0.1\n")
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value) == f"{path}: data.augment.reverb: must be >= 0 and <= 1, got -0.1"
    with pytest.raises(ParamsError, match=r"data\.augment\.reverbb -> did you mean data\.augment\.reverb"):
        params_from_dict({"data": {"augment": {"reverbb": 0.2}}})


def test_augmentation_is_off_in_the_demo_profile_and_on_in_the_real_one(repo_root):
    from vocalsep.data.augment import is_active

    assert load_params(repo_root / "params.yaml").data.augment == AugmentParams()
    assert not is_active(load_params(repo_root / "params.yaml").data.augment)
    real = load_params(repo_root / "params-real.yaml").data.augment
    assert is_active(real) and 0 < real.pitch_shift <= 0.5 and 0 < real.reverb <= 0.5
