"""Logging the served model: the MLflow pyfunc around a checkpoint, as the export stage and the base model
registration both log it (models from code, nothing pickled), and the tags `vocalsep models` reads."""

from __future__ import annotations

from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np

import vocalsep
from vocalsep import provenance, registry
from vocalsep.config import Params
from vocalsep.serving.pyfunc import AUDIO_PARAM, CHANNELS, CHECKPOINT_ARTIFACT, CONFIG_ARTIFACT, ServingConfig

# What the served model imports (vocalsep's own code ships with it): pinned to this environment.
SERVING_DISTRIBUTIONS = ("torch", "numpy", "soundfile", "soxr", "safetensors", "mlflow", "pyloudnorm", "pyyaml", "tqdm",
                         "imageio-ffmpeg")


def pip_requirements() -> list[str]:
    """Exact installed versions of what the served model imports."""
    return [f"{name}=={installed_version(name)}" for name in SERVING_DISTRIBUTIONS]


def input_example(sample_rate: int) -> np.ndarray:
    """50 ms of quiet seeded noise, `(samples, 2)` float32: small enough to store in the MLmodel folder."""
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((sample_rate // 20, CHANNELS))).astype(np.float32)


def log_model(params: Params, checkpoint: Path, sample_rate: int, provenance_file: Path,
              config_dir: Path | None = None) -> str:
    """Log the served pyfunc around `checkpoint` (and what it learned from) in the active run; returns its URI.

    Its `serving.json` is written in `config_dir` (default `<paths.export>`).
    """
    serving = ServingConfig.from_params(params, sample_rate)
    folder = Path(config_dir or params.paths.export)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = serving.write(folder / "serving.json")
    return registry.log_pyfunc_model(
        str(Path(vocalsep.__file__).parent / "serving" / "served_model.py"),  # models from code: nothing pickled
        artifacts={CHECKPOINT_ARTIFACT: str(checkpoint), CONFIG_ARTIFACT: str(config_path),
                   provenance.ARTIFACT: str(provenance_file)},
        signature=registry.serving_signature(CHANNELS, (AUDIO_PARAM, provenance.ARTIFACT)),
        input_example=input_example(params.audio.sample_rate),
        pip_requirements=pip_requirements(),
        code_paths=[str(Path(vocalsep.__file__).parent)],
    )


def model_tags(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What `vocalsep models` shows of a version without downloading it: class, size, what it learned from."""
    from vocalsep.default_model import trained_on_demo_only

    values = ckpt.get("params") or {}
    if trained_on_demo_only(ckpt):
        origin = "the synthetic demo corpus only"
    else:
        sources = (values.get("download") or {}).get("sources", "?")
        origin = f"{sources} (corpus set {(values.get('corpus') or {}).get('set', 'none')})"
    parameters = sum(int(t.numel()) for t in ckpt["state"].values() if hasattr(t, "numel"))
    return {"class": ckpt.get("class", "?"), "parameters": parameters, "trained_on": origin}
