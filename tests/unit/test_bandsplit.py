"""BandSplitVocNet: band edges, shapes, silence, locality and context, chunking, checkpoints, learning, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocalsep.config import ParamsError, params_from_dict, params_to_dict
from vocalsep.model import BandSplitVocNet, build_model, load_model, model_kwargs, save_checkpoint
from vocalsep.model.bandsplit import band_edges
from vocalsep.separate import separate
from vocalsep.stages.export import export_torchscript
from vocalsep.training.losses import snr_loss

SMALL = {"bands": 6, "band_filters": 8, "layers": 4, "layers_per_stack": 4, "kernel_size": 3, "n_fft": 256, "hop": 64}
BANDSPLIT_KEYS = {"bands", "band_filters", "layers", "layers_per_stack", "kernel_size", "n_fft", "hop",
                  "lookahead_frames"}


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: on a shared 2-core machine two threads run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(seed: int = 0, **overrides) -> BandSplitVocNet:
    torch.manual_seed(seed)
    return BandSplitVocNet(**{**SMALL, **overrides}).eval()


@pytest.fixture(scope="module")
def model() -> BandSplitVocNet:
    return small()


def run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize("bins, bands", [(1025, 24), (1025, 1), (129, 6), (129, 129), (513, 40), (5, 4)])
def test_band_edges_cover_every_bin_once_in_order(bins, bands):
    edges = band_edges(bins, bands)
    assert len(edges) == bands + 1 and edges[0] == 0 and edges[-1] == bins
    assert all(a < b for a, b in zip(edges, edges[1:]))  # no empty band, no band out of order
    covered = [i for lo, hi in zip(edges, edges[1:]) for i in range(lo, hi)]
    assert covered == list(range(bins))


def test_bands_are_narrow_at_low_frequency_and_wide_at_high():
    edges = band_edges(1025, 24)
    widths = [b - a for a, b in zip(edges, edges[1:])]
    assert widths == sorted(widths) and widths[0] <= 8 and widths[-1] >= 100


@pytest.mark.parametrize("bands", [0, 130])
def test_impossible_band_counts_are_refused(bands):
    with pytest.raises(ValueError, match="bands"):
        BandSplitVocNet(**{**SMALL, "bands": bands})


@pytest.mark.parametrize("length", [1, 5, 63, 65, 129, 257, 1001, 4097])
def test_output_shape_equals_input_shape(model, length):
    assert length < SMALL["n_fft"] or length % SMALL["hop"]
    out = run(model, torch.randn(3, 2, length))
    assert out.shape == (3, 2, length) and torch.isfinite(out).all()


@pytest.mark.parametrize("lookahead_frames", [-1, 0])
@pytest.mark.parametrize("length", [1, 300, 5000])
def test_silence_in_gives_exact_silence_out(lookahead_frames, length):
    out = run(small(lookahead_frames=lookahead_frames), torch.zeros(2, 2, length))
    assert out.shape == (2, 2, length) and not out.any()


def test_the_output_is_not_the_mixture_or_silence(model):
    """An untrained model still masks: it neither passes the mixture through nor mutes it."""
    x = torch.randn(1, 2, 4000)
    out = run(model, x)
    assert 0.01 < float(out.pow(2).mean() / x.pow(2).mean()) < 2
    assert (out - x).abs().max() > 0.1


def impulse_response(net: BandSplitVocNet, position: int, length: int = 8192) -> torch.Tensor:
    """|output change| `(samples,)` when one input sample at `position` changes, in float64 (zero means zero)."""
    net = net.double()
    x = torch.randn(1, 2, length, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, 1, position] += 1.0
    return (run(net, y) - run(net, x)).abs().amax(dim=(0, 1))


@pytest.mark.parametrize("overrides", [{}, {"kernel_size": 2}, {"lookahead_frames": 0}, {"lookahead_frames": 3}])
def test_an_input_sample_reaches_only_outputs_within_the_context(overrides):
    """Output s reads input [s - before, s + after], so input p reaches outputs [p - after, p + before] only;
    and the claim is tight to within one STFT window, not padding."""
    net = small(**overrides)
    before, after = net.context
    position = 4000
    changed = torch.nonzero(impulse_response(net, position) > 1e-12).flatten()
    first, last = int(changed.min()), int(changed.max())
    assert position - after <= first and last <= position + before, (first, last, net.context)
    assert first < position - after + SMALL["n_fft"] and last > position + before - SMALL["n_fft"]


def test_lookahead_frames_shorten_the_context_ahead():
    centred, live = small().context, small(lookahead_frames=0).context
    assert live[1] == SMALL["n_fft"] < centred[1] and live[0] > centred[0]
    assert sum(live) == sum(centred)


@pytest.mark.parametrize("chunk", [640, 1000])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_chunked_separation_equals_one_whole_pass(model, chunk, batch_size):
    assert (chunk % model.stride == 0) == (chunk == 640)
    length = 6001
    mixture = np.random.default_rng(chunk).standard_normal((2, length)).astype(np.float32)
    assert chunk + model.receptive_field < length  # windows are parts of the song, not all of it
    chunked = separate(model, mixture, chunk_samples=chunk, overlap_samples=chunk // 8, batch_size=batch_size)
    whole = run(model, torch.from_numpy(mixture)[None])[0].numpy()
    assert chunked.shape == mixture.shape and chunked.dtype == np.float32
    assert np.abs(chunked - whole).max() < 1e-5


def test_a_checkpoint_rebuilds_the_same_model(tmp_path):
    net = small(seed=3)
    save_checkpoint(tmp_path / "best.pt", net, SMALL, git_sha="test")
    loaded = load_model(tmp_path / "best.pt")
    assert type(loaded) is BandSplitVocNet and loaded.edges == net.edges
    x = torch.randn(2, 2, 3001)
    assert torch.equal(run(loaded, x), run(net, x))


def test_the_loss_falls_on_a_tiny_batch_and_every_parameter_learns():
    """A tone under noise, the tone as the target: 40 Adam steps must cut the loss; no parameter may go unused
    (DistributedDataParallel refuses those)."""
    net = small(seed=1).train()
    t = torch.arange(4096) / 8000
    vocals = 0.3 * torch.sin(2 * torch.pi * 440 * t * torch.tensor([[1.0], [1.5]]))[None].repeat(2, 1, 1)
    mixture = vocals + 0.3 * torch.randn(2, 2, 4096, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = snr_loss(estimate=net(mixture), target=vocals)
        loss.backward()
        if not losses:
            assert [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()] == []
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 3, losses  # at least 3 dB better


def test_torchscript_export_reproduces_the_model(tmp_path):
    assert export_torchscript(small(), tmp_path / "model.ts", 1e-4) < 1e-4


def test_the_config_selects_it_and_hands_it_only_its_keys():
    section = params_to_dict(params_from_dict({"model": {"name": "BandSplitVocNet", **SMALL}}))["model"]
    assert section["name"] == "BandSplitVocNet"
    kwargs = model_kwargs("BandSplitVocNet", section)
    assert set(kwargs) == BANDSPLIT_KEYS
    net = build_model(section["name"], kwargs)
    assert type(net) is BandSplitVocNet and len(net.edges) == SMALL["bands"] + 1


@pytest.mark.parametrize("values, key", [({"bands": 0}, "model.bands"), ({"band_filters": 0}, "model.band_filters"),
                                         ({"name": "BandSplitVocNet", "bands": 130, "n_fft": 256, "hop": 64},
                                          "model.bands"),
                                         ({"name": "BandSplit"}, "model.name")])
def test_bad_values_are_refused_naming_the_key(values, key):
    with pytest.raises(ParamsError, match=rf"^{key}: "):
        params_from_dict({"model": values})


@pytest.mark.parametrize("profile", ["params.yaml", "params-real.yaml", "params-gpu.yaml", "params-live.yaml"])
def test_every_profile_builds_a_bandsplit_model_on_its_model_section(repo_root, profile):
    from vocalsep.config import load_params

    section = params_to_dict(load_params(repo_root / profile))["model"]
    net = build_model("BandSplitVocNet", model_kwargs("BandSplitVocNet", section))
    assert net.edges[-1] == section["n_fft"] // 2 + 1 and len(net.edges) == section["bands"] + 1


def test_it_trains_under_bf16_autocast(monkeypatch):
    """The train stage runs CUDA in bf16 autocast (`train.amp`); the mask's linear layers then give bf16.
    torch 2.11's `view_as_complex` refuses bf16 (the first GPU lease failed so) while this machine's torch
    takes it, so the check stands in for the older rule. CPU autocast makes the same bf16 mask."""
    plain = torch.view_as_complex

    def strict(x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in (torch.float16, torch.float32, torch.float64):
            raise RuntimeError(f"view_as_complex is only supported for half, float and double tensors, not {x.dtype}")
        return plain(x)

    monkeypatch.setattr(torch, "view_as_complex", strict)
    model = small().train()
    x = torch.randn(2, 2, 4096) * 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.float32 and y.shape == x.shape and torch.isfinite(y).all()
    snr_loss(estimate=y, target=x).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
