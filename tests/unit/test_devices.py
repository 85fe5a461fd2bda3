import pytest
import torch

from vocalsep.devices import pick_device
from vocalsep.errors import VocalsepError


def test_cpu_and_auto_without_cuda_are_cpu():
    assert pick_device("cpu", "train.device") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto", "separate.device") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_a_gpu_is_a_clear_error_naming_the_key():
    with pytest.raises(VocalsepError, match=r"separate\.device is 'cuda' but no CUDA device"):
        pick_device("cuda", "separate.device")


def test_unknown_device_names_the_key():
    with pytest.raises(VocalsepError, match=r"train\.device is 'tpu'"):
        pick_device("tpu", "train.device")


def test_a_numbered_cuda_device_is_not_a_setting():
    with pytest.raises(VocalsepError, match=r"separate\.device is 'cuda:1'; use 'auto', 'cpu' or 'cuda'"):
        pick_device("cuda:1", "separate.device")
