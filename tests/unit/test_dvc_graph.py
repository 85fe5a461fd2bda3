"""dvc.yaml agrees with the code: the train stage tracks exactly the train params the resume key uses."""

import yaml

from vocalsep.config import TrainParams
from vocalsep.training.state import RUNTIME_KEYS


def test_train_stage_tracks_every_result_shaping_train_param(repo_root):
    stage = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]["train"]
    tracked = {p.removeprefix("train.") for p in stage["params"] if isinstance(p, str) and p.startswith("train.")}
    assert tracked == set(TrainParams.__dataclass_fields__) - RUNTIME_KEYS
