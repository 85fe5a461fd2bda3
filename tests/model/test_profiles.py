"""params-gpu.yaml stays a complete copy of params.yaml that differs only in its scale."""

from __future__ import annotations

import yaml

from vocalsep.config import flatten, load_params, params_to_dict

# the keys the GPU profile sets on purpose; every other value must equal params.yaml's
SCALE_KEYS = {
    "index.snippet_seconds", "index.hop_seconds",
    "model.filters", "model.skip_filters", "model.layers",
    "data.segment_seconds", "data.examples_per_epoch", "data.val_examples",
    "train.device", "train.epochs", "train.batch_size", "train.early_stopping_patience", "train.workers",
    "train.log_every", "train.checkpoint_every", "separate.batch_size",
}


def test_gpu_profile_is_complete_and_differs_only_in_scale(repo_root):
    gpu, cpu = load_params(repo_root / "params-gpu.yaml"), load_params(repo_root / "params.yaml")
    raw_gpu = flatten(yaml.safe_load((repo_root / "params-gpu.yaml").read_text()))
    raw_cpu = flatten(yaml.safe_load((repo_root / "params.yaml").read_text()))
    assert set(raw_gpu) == set(raw_cpu), "params-gpu.yaml must hold every key of params.yaml"
    flat_gpu, flat_cpu = flatten(params_to_dict(gpu)), flatten(params_to_dict(cpu))
    drift = sorted(k for k in flat_cpu if k not in SCALE_KEYS and flat_gpu[k] != flat_cpu[k])
    assert not drift, f"params-gpu.yaml is out of date with params.yaml for: {drift}"
    assert (gpu.model.filters, gpu.model.skip_filters, gpu.model.layers) == (128, 192, 30)
    assert gpu.train.device == "cuda"


def test_real_profile_holds_exactly_the_keys_of_params_yaml(repo_root):
    """params-real.yaml is edited by hand beside params.yaml: a key added to one and not the other
    would silently take the dataclass default in the profile that lacks it."""
    raw_real = flatten(yaml.safe_load((repo_root / "params-real.yaml").read_text()))
    raw_cpu = flatten(yaml.safe_load((repo_root / "params.yaml").read_text()))
    assert sorted(set(raw_cpu) - set(raw_real)) == [], "keys of params.yaml missing from params-real.yaml"
    assert sorted(set(raw_real) - set(raw_cpu)) == [], "keys of params-real.yaml missing from params.yaml"
    real = load_params(repo_root / "params-real.yaml")
    assert real.model.name == "HybridVocNet" and real.corpus.set != "none"
