import pytest
import torch

from vocalsep.devices import pick_device
from vocalsep.errors import VocalsepError
from vocalsep.separate import resolve_device


def test_cpu_and_auto_without_cuda_are_cpu():
    assert pick_device("cpu", "train.device") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_a_gpu_is_a_clear_error_naming_the_key():
    with pytest.raises(VocalsepError, match=r"separate\.device is 'cuda' but no CUDA device"):
        resolve_device("cuda")


def test_unknown_device_names_the_key():
    with pytest.raises(VocalsepError, match=r"train\.device is 'tpu'"):
        pick_device("tpu", "train.device")
