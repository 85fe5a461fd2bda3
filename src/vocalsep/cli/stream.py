"""`vocalsep stream [INPUT] [-o OUTPUT]`: separate a live signal block by block, with bounded latency.

Reads raw PCM (`--format f32le|s16le`, `--rate`, `--channels`) or a WAV
stream from stdin (`-`, the default) or a file, and writes the vocals as soon
as they are final: raw PCM in the input's format to stdout, or a WAV/FLAC
file. With `--realtime` a file input is read at real-time pace (as a live
source would deliver it) and the run counts underruns: output that was not
ready when a player would have needed it.

Latency: a vocal sample can be written once the block that holds it and the
model's lookahead (its right context, rounded to its frame stride) have come
in, so the latency is `block + lookahead`, the lookahead rounded up to whole
blocks since input arrives a block at a time (plus the resampler's delay when the
input's rate is not the model's). A player also leaves one block's time for
the compute, so playback runs `2 blocks + lookahead` behind the input; a block
not ready by then is an underrun. Both are printed at start;
`stream.block_seconds` sets the block. The offline base model looks 1.6 s ahead; the low-latency
profile (`params-live.yaml`, a HybridVocNet with `lookahead_frames: 0`)
looks 41 ms ahead (35 ms of right context plus one frame of alignment).

The output equals `vocalsep separate` run with `separate.chunk_seconds` equal
to the block (the same core, fed block by block: `vocalsep.streaming`).

Audio devices: `--input-device NAME|INDEX` records from a sound card instead
of INPUT and `--output-device` plays the vocals (`-o` still writes them when
given); `--list-devices` prints what PortAudio finds. They need the
sounddevice library and the PortAudio library (`pip install 'vocalsep[live]'`,
`apt-get install libportaudio2`). Recording runs until `--seconds` have come
in, or until Ctrl-C. Device underruns (input overflows, output underflows
that PortAudio reports) are counted in the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from dataclasses import dataclass, field
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vocalsep.config import DEFAULT_PARAMS, ParamsError, SeparateParams, StreamParams, TrackingParams, load_params
from vocalsep.errors import VocalsepError
from vocalsep.devices import pick_device
from vocalsep.default_model import stream_default
from vocalsep.loading import load_separator
from vocalsep.separate import fit_length
from vocalsep.live_io import DeviceInput, DeviceOutput, WaveFrames, Writer, device_index, limited, pcm_blocks, sounddevice_module
from vocalsep.streaming import StreamingCore, Resampler

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vocalsep stream", description="Separate a live signal block by block.")
    parser.add_argument("input", nargs="?", default="-", help="raw PCM or WAV file, or - for stdin (default)")
    parser.add_argument("-o", "--out", help="- for raw PCM on stdout (the default without --output-device), "
                                              "or a .wav/.flac file")
    parser.add_argument("--model", default=None,
                        help="pretrained-live (default: the shipped low-latency model), pretrained, a checkpoint "
                             "path, or a models:/ or runs:/ URI")
    parser.add_argument("--format", choices=["f32le", "s16le", "wav"], default="f32le",
                        help="input format (raw PCM interleaved, or a WAV stream); default f32le")
    parser.add_argument("--rate", type=int, default=44100, help="raw input sample rate (default 44100)")
    parser.add_argument("--channels", type=int, choices=[1, 2], default=2, help="raw input channels (default 2)")
    parser.add_argument("--realtime", action="store_true", help="read a file input at real-time pace")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="params file for the stream section (default: params.yaml; defaults if absent)")
    parser.add_argument("--report", type=Path, help="write latency, block timings and underruns as JSON here")
    parser.add_argument("--input-device", help="record from this audio device (name or index) instead of INPUT")
    parser.add_argument("--output-device", help="play the vocals on this audio device (name or index)")
    parser.add_argument("--seconds", type=float, help="stop after this much input (default: the input's end; "
                                                        "Ctrl-C for a device)")
    parser.add_argument("--list-devices", action="store_true", help="print the audio devices PortAudio finds")
    args = parser.parse_args(argv)
    if args.seconds is not None and args.seconds <= 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    return args


def _reader(args: argparse.Namespace) -> tuple[BinaryIO, int, int, str]:
    """(byte stream positioned at the samples, rate, channels, dtype)."""
    stream = sys.stdin.buffer if args.input == "-" else None
    if stream is None:
        path = Path(args.input)
        if path.is_dir() or not path.is_file():
            raise VocalsepError(f"{path}: {'is a directory' if path.is_dir() else 'not found'}; give a raw PCM or "
                                "WAV file, or - for stdin")
        stream = path.open("rb")
    if args.format != "wav":
        return stream, args.rate, args.channels, args.format
    try:
        header = wave.open(stream, "rb")
    except (wave.Error, EOFError) as err:
        raise VocalsepError(f"{args.input}: not a PCM WAV stream ({err}); use --format f32le or s16le for raw PCM")
    if header.getsampwidth() != 2 or header.getnchannels() not in (1, 2):
        raise VocalsepError(f"{args.input}: WAV must be 16-bit mono or stereo; convert it or send raw f32le")
    return WaveFrames(header), header.getframerate(), header.getnchannels(), "s16le"


def _warm_up(core: StreamingCore, block: int) -> None:
    import torch

    window = sum(core.context) + block + 2 * core.stride
    with torch.inference_mode():
        for _ in range(2):
            core.model(torch.zeros(1, 2, window, device=core.device))


@dataclass
class _Plan:
    """The stream's timing: block and lookahead in model samples, latencies in seconds."""

    block: int
    lookahead: int
    waited: int  # the lookahead in whole blocks: input comes a block at a time
    latency: float
    playback: float


def _plan(core: StreamingCore, block: int, model_rate: int) -> _Plan:
    lookahead = core.context[1] + core.stride
    waited = -(-lookahead // block) * block
    latency = (block + waited) / model_rate
    return _Plan(block, lookahead, waited, latency, latency + block / model_rate)  # playback: one block for compute


def _announce(plan: _Plan, model: str, model_rate: int) -> None:
    print(f"vocalsep stream: latency {1000 * plan.latency:.0f} ms = block {1000 * plan.block / model_rate:.0f} ms + "
          f"lookahead {1000 * plan.lookahead / model_rate:.0f} ms in whole blocks ({1000 * plan.waited / model_rate:.0f} ms)"
          f" (model {model} at {model_rate} Hz); playback latency {1000 * plan.playback:.0f} ms with one block "
          "for compute", file=sys.stderr, flush=True)


def _open_core(args: argparse.Namespace, stream_params: StreamParams, separate: SeparateParams,
               tracking: TrackingParams | None) -> tuple[StreamingCore, int, _Plan]:
    import torch

    from vocalsep.runtime import for_separation

    torch.set_num_threads(stream_params.threads)
    device = pick_device(separate.device, "separate.device")  # auto: CUDA when present, else CPU
    spec, why = (args.model, args.model) if args.model else stream_default()
    model, model_rate = load_separator(spec, device, tracking)
    model = for_separation(model, separate)  # CPU: ONNX Runtime where it is faster (separate.runtime)
    stride = int(getattr(model, "stride", 1))
    block = max(stride, round(stream_params.block_seconds * model_rate / stride) * stride)
    core = StreamingCore(model, chunk_samples=block, overlap_samples=0, batch_size=1, device=device)
    plan = _plan(core, block, model_rate)
    _announce(plan, why, model_rate)
    _warm_up(core, plan.block)  # the first call allocates and picks kernels: not on the live clock
    return core, model_rate, plan


@dataclass
class _Ends:
    """Where the stream comes from and goes to, at the input's rate."""

    source: Iterator[np.ndarray]
    writer: Writer
    rate: int
    device_input: DeviceInput | None
    device_out: DeviceOutput | None


def _open_ends(args: argparse.Namespace, block: int, model_rate: int) -> _Ends:
    sd = sounddevice_module() if args.input_device or args.output_device else None
    if args.input_device:
        device_in, (rate, channels, fmt) = device_index(sd, args.input_device, "input"), (args.rate, args.channels, "f32le")
    else:
        stream, rate, channels, fmt = _reader(args)
    device_out = DeviceOutput(sd, device_index(sd, args.output_device, "output"), rate) if args.output_device else None
    out = args.out if args.out is not None else (None if device_out else "-")
    in_block = max(1, round(block * rate / model_rate))
    limit = None if args.seconds is None else round(args.seconds * rate)
    device_input = DeviceInput(sd, device_in, rate, channels, in_block) if args.input_device else None
    source = limited(iter(device_input) if device_input else pcm_blocks(stream, in_block, channels, fmt), limit)
    return _Ends(source, Writer(out, rate, channels, fmt, device_out), rate, device_input, device_out)


@dataclass
class _Tally:
    timings: list[float] = field(default_factory=list)
    underruns: int = 0
    slow: int = 0  # blocks whose compute took longer than the block lasts
    read: int = 0
    written: int = 0


def _warn_slow(tally: _Tally, block_seconds: float) -> None:
    """Say once that a block took longer to separate than it lasts: live, this machine falls behind."""
    if not tally.slow:
        print(f"vocalsep stream: warning: a {1000 * block_seconds:.0f} ms block took "
              f"{1000 * tally.timings[-1]:.0f} ms to separate; live, this machine cannot keep up (use a lighter "
              "model such as pretrained-live, fewer threads elsewhere, or a longer stream.block_seconds)",
              file=sys.stderr, flush=True)
    tally.slow += 1


def _pump(core: StreamingCore, ends: _Ends, model_rate: int, playback: float, pace: bool, live: bool) -> _Tally:
    """Every input block through the core to the writer; `pace` holds a file source to its real-time clock."""
    rate, tally = ends.rate, _Tally()
    down, up = Resampler(rate, model_rate, 2), Resampler(model_rate, rate, 2)
    start = time.perf_counter()
    for samples in ends.source:
        tally.read += samples.shape[0]
        if pace:  # a live source delivers a block once it has been played
            time.sleep(max(0.0, start + tally.read / rate - time.perf_counter()))
        began = time.perf_counter()
        vocals = up(core.push(down(samples).T).T)
        tally.timings.append(time.perf_counter() - began)
        if tally.timings[-1] > samples.shape[0] / rate:
            _warn_slow(tally, samples.shape[0] / rate)
        if vocals.shape[0]:
            if live and time.perf_counter() > start + tally.written / rate + playback:
                tally.underruns += 1  # a player that started `playback` after the input would have run dry
            ends.writer.write(vocals)
            tally.written += vocals.shape[0]
    tail = up(core.push(down(np.zeros((0, 2), np.float32), last=True).T).T)
    tail = fit_length(np.concatenate([tail, up(core.finish().T, last=True)]), max(0, tally.read - tally.written))
    ends.writer.write(tail)
    tally.written += tail.shape[0]
    return tally


def _report(args: argparse.Namespace, plan: _Plan, model_rate: int, ends: _Ends, tally: _Tally, live: bool,
            wall: float) -> dict:
    per_block = np.asarray(tally.timings or [0.0])
    return {"latency_ms": round(1000 * plan.latency, 1), "playback_latency_ms": round(1000 * plan.playback, 1),
            "block_ms": round(1000 * plan.block / model_rate, 2),
            "lookahead_ms": round(1000 * plan.lookahead / model_rate, 2), "blocks": len(tally.timings),
            "block_compute_ms": {"p50": round(1000 * float(np.percentile(per_block, 50)), 2),
                                 "p99": round(1000 * float(np.percentile(per_block, 99)), 2),
                                 "max": round(1000 * float(per_block.max()), 2)},
            "realtime": live, "underruns": tally.underruns if live else None, "slow_blocks": tally.slow,
            "input_device": args.input_device, "output_device": args.output_device,
            "input_overflows": ends.device_input.overflows if ends.device_input else None,
            "output_underflows": ends.device_out.underflows if ends.device_out else None,
            "input_seconds": round(tally.read / ends.rate, 3), "wall_seconds": round(wall, 3),
            "frames_written": tally.written}


def run(args: argparse.Namespace, stream_params: StreamParams, separate: SeparateParams,
        tracking: TrackingParams | None = None) -> dict:
    core, model_rate, plan = _open_core(args, stream_params, separate, tracking)
    ends = _open_ends(args, plan.block, model_rate)
    live = args.realtime or bool(args.input_device)  # a device delivers in real time by itself
    start = time.perf_counter()
    try:
        tally = _pump(core, ends, model_rate, plan.playback, args.realtime and not args.input_device, live)
    finally:
        ends.writer.close()
    return _report(args, plan, model_rate, ends, tally, live, time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list_devices:
            print(sounddevice_module().query_devices())
            return 0
        # a --params file named but absent is an error; only the default may be absent
        params = load_params(args.params) if args.params.exists() or args.params != DEFAULT_PARAMS else None
        stream_params = params.stream if params else StreamParams()
        separate = params.separate if params else SeparateParams(device="cpu")
        report = run(args, stream_params, separate, params.tracking if params else None)
    except (ParamsError, VocalsepError) as err:
        print(f"vocalsep stream: {err}", file=sys.stderr)
        return 2
    print("vocalsep stream: " + json.dumps(report), file=sys.stderr)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
