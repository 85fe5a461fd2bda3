"""`vocalsep separate INPUT... -o OUTDIR`: vocals and accompaniment stems for audio files.

Each input (any format `vocalsep.audio.read_audio` decodes, any rate and
channel count) is turned stereo, resampled to the model's rate, separated by
the core, resampled back and written as `OUTDIR/<input stem>/vocals.wav` and
`accompaniment.wav` at the input's rate and length. Stems are 32-bit float WAV
so nothing clips and `vocals + accompaniment` gives the mixture back.

Files are read, resampled, separated and written block by block
(`vocalsep.streaming.stream_file`): peak memory does not grow with the song's
length, and the stems equal those of the whole-file pass (`separate_file`,
what the evaluate stage and serving use) up to float rounding.

Channels: a mono input gives mono stems (the model sees it on both sides and
its two vocal channels are averaged); any other input gives stereo stems of
its stereo down-mix (`audio.to_stereo`), which is what the stems sum to.

A file that is missing, empty or undecodable is reported on one line and
the other files still run; the exit code is 1 if any file failed, 2 if the
model or the params cannot be loaded, else 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn
from tqdm import tqdm

from vocalsep.audio import read_audio, to_stereo
from vocalsep.config import DEFAULT_PARAMS, ParamsError, SeparateParams, TrackingParams, cli_params
from vocalsep.errors import VocalsepError
from vocalsep.model import load_checkpoint
from vocalsep.pretrained import PRETRAINED
from vocalsep.runtime import OrtSeparator, for_separation
from vocalsep.loading import checkpoint_path, load_separator, model_from_checkpoint
from vocalsep.separate import separate_at_rate
from vocalsep.streaming import stream_file

DEFAULT_MODEL = "auto"
CHAMPION = "models:/vocalsep@champion"
STEM_SUBTYPE = "FLOAT"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vocalsep separate", description="Separate vocals from audio files.")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="audio files (wav, flac, mp3, ogg, m4a, ...)")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUTDIR",
                        help="folder for <name>/{vocals,accompaniment}.wav")
    parser.add_argument("--name", metavar="PATTERN",
                        help="output folder of each input under OUTDIR, from {stem} (file name without extension), "
                             "{parent} (its folder's name), {index} (1-based position); default: {stem}, and "
                             "for inputs that share a stem, their parent folders too (a/mix.wav -> a/mix)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="auto (default: the registry's champion if it was trained on real recordings, else "
                             "the shipped base model), pretrained (the shipped base model), a checkpoint path, "
                             "or an MLflow models:/ or runs:/ URI")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help="params file for the separate section (default: params.yaml; defaults if absent)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides separate.device")
    parser.add_argument("--runtime", choices=["auto", "torch", "onnxruntime"],
                        help="overrides separate.runtime (CPU: auto runs VocNet in ONNX Runtime, others in torch)")
    return parser.parse_args(argv)


def separate_params(params: SeparateParams, device: str | None, runtime: str | None = None) -> SeparateParams:
    """`params` with device and runtime overridden by the command line."""
    params = dataclasses.replace(params, device=device) if device else params
    return dataclasses.replace(params, runtime=runtime) if runtime else params


def separate_file(
    model: nn.Module, model_rate: int, params: SeparateParams, path: Path, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stems of one file: `(vocals, accompaniment, sample_rate)`, each `(frames, channels)` float32.

    channels is 1 for a mono input, else 2; frames and rate are the input's.
    """
    audio, rate = read_audio(path)
    mixture = to_stereo(audio)
    vocals = separate_at_rate(model, model_rate, mixture, rate, params, progress=progress)
    if audio.shape[1] == 1:
        mixture, vocals = audio, vocals.mean(axis=1, keepdims=True)
    return vocals, mixture - vocals, rate


def trained_on_demo_only(ckpt: dict) -> bool:
    """Whether a checkpoint's params say it learned from the synthetic demo corpus and nothing else."""
    params = ckpt.get("params") or {}
    corpus = (params.get("corpus") or {}).get("set", "none")
    sources = (params.get("download") or {}).get("sources", "")
    return corpus == "none" and Path(str(sources)).name == "demo.yaml"


def choose_model(device: str, tracking: TrackingParams | None = None) -> tuple[nn.Module, int, str]:
    """`--model auto`: the champion when it learned from real recordings, else the base model; and why.

    After `make run` the champion has only heard the synthetic demo, which
    says little about real voice over real music, so real songs go to the
    shipped base model unless the user names the champion.
    """
    try:
        ckpt = load_checkpoint(checkpoint_path(CHAMPION, tracking), map_location="cpu")
    except VocalsepError as err:
        why = f"the registry has no champion yet ({str(err).splitlines()[0][:160]})"
    else:
        if not trained_on_demo_only(ckpt):
            model, rate = model_from_checkpoint(ckpt, device)
            return model, rate, f"{CHAMPION} (the registry's champion)"
        why = (f"{CHAMPION} was trained only on the synthetic demo corpus; "
               f"pass --model {CHAMPION} to use it anyway")
    model, rate = load_separator(PRETRAINED, device)
    return model, rate, f"pretrained (the shipped base model, trained on real recordings): {why}"


def _remove_partial(stems: tuple[Path, ...], folder: Path) -> None:
    """A failed input leaves no half-written stems (nor the folder made for them)."""
    for stem in stems:
        if stem.is_file():
            stem.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass


def _distinct_name(path: Path, others: list[Path]) -> str:
    """`stem`, led by as many parent folders as it takes to tell `path` from `others` with the same stem."""
    parents = path.resolve().parent.parts[::-1]
    for depth in range(len(parents) + 1):
        name = "/".join([*parents[:depth][::-1], path.stem])
        if all("/".join([*o.resolve().parent.parts[::-1][:depth][::-1], o.stem]) != name for o in others):
            return name
    return path.stem


def output_names(paths: Sequence[Path], pattern: str | None = None) -> list[str]:
    """One output folder name per input, unique in the run, that a person can map back to the input.

    With `pattern` ({stem}, {parent}, {index}) each name is the pattern's; without one it is the
    file's stem, and inputs that share a stem keep their parent folders (`a/mix.wav`, `b/mix.wav` ->
    `a/mix`, `b/mix`). A name still taken (the same file twice, a pattern without {stem}) gets `-2`, `-3`...
    """
    names, taken = [], set()
    for index, path in enumerate(paths, start=1):
        if pattern is not None:
            try:
                name = pattern.format(stem=path.stem, parent=path.resolve().parent.name, index=index)
            except (KeyError, IndexError, ValueError) as err:
                raise VocalsepError(f"--name {pattern!r}: {err!r} is not a field; use {{stem}}, {{parent}} and "
                                    "{index}") from None
        else:
            twins = [p for p in paths if p.stem == path.stem and p.resolve() != path.resolve()]
            name = _distinct_name(path, twins) if twins else path.stem
        base, k = name, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        taken.add(name)
        names.append(name)
    return names


def check_output_folder(out: Path) -> None:
    """Fail before any work when `out` cannot be a folder we write in (a file, or under one; read-only)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is" if existing == out else f"is under {existing}, which is"
        raise VocalsepError(f"-o {out}: {where} a file, not a folder; choose another output folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VocalsepError(f"-o {out}: {existing} is not writable; choose another output folder")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_output_folder(args.out)
        names = output_names(args.inputs, args.name)
        settings = cli_params(args.params)
        params = separate_params(settings.separate, args.device, args.runtime)
        if args.model == DEFAULT_MODEL:
            model, model_rate, which = choose_model(params.device, settings.tracking)
        else:
            (model, model_rate), which = load_separator(args.model, params.device, settings.tracking), args.model
        model = for_separation(model, params)  # CPU: ONNX Runtime where it is faster (separate.runtime)
    except (ParamsError, VocalsepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {which}{' (ONNX Runtime)' if isinstance(model, OrtSeparator) else ''}", file=sys.stderr)
    failed = 0
    for path, name in tqdm(list(zip(args.inputs, names)), desc="files", unit="file"):
        folder = args.out / name
        stems = (folder / "vocals.wav", folder / "accompaniment.wav")
        try:
            # read, separated and written block by block: memory stays flat whatever the song's length
            stream_file(model, model_rate, params, path, *stems, subtype=STEM_SUBTYPE)
        except VocalsepError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            _remove_partial(stems, folder)
            continue
        except (OSError, RuntimeError) as err:  # disk full, a file where a folder should be: this input fails
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
            print(f"error: {path}: cannot write the stems to {folder} ({reason})", file=sys.stderr)
            failed += 1
            _remove_partial(stems, folder)
            continue
        print(f"{path} -> {folder}/{{vocals,accompaniment}}.wav")
    if failed:
        print(f"{failed} of {len(args.inputs)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
