"""Corpus groups that select audio inside a zip archive of a package (a game's .pk3), from a real .deb."""

from __future__ import annotations

import hashlib
import io
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from vocalsep.corpus.build import build_corpus
from vocalsep.corpus.spec import CorpusError
from vocalsep.sources import file_url_path, load_sources, resolve_url

PACKAGE, VERSION = "vocalsep-test-music", "2.5-2"
PK3 = "usr/share/games/test-game/base/0music.pk3"
RATE = 44100


def tone(seconds: float, f0: float) -> bytes:
    """An ogg file of a stereo chord, as bytes."""
    t = np.arange(int(seconds * RATE)) / RATE
    audio = sum(np.sin(2 * np.pi * f * t) for f in (f0, 1.25 * f0, 1.5 * f0)) / 4
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([audio, 0.8 * audio], axis=1).astype(np.float32), RATE, format="OGG",
             subtype="VORBIS")
    return buffer.getvalue()


def build_deb(root: Path, archive: bytes) -> Path:
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: {VERSION}\nArchitecture: all\n"
        "Maintainer: vocalsep tests <tests@example.org>\nDescription: test music in a pk3\n")
    (root / PK3).parent.mkdir(parents=True)
    (root / PK3).write_bytes(archive)
    (root / "usr/share/games/test-game/base/loose.ogg").write_bytes(tone(1.0, 330.0))  # outside the archive
    built = root.parent / f"{PACKAGE}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(built)], check=True,
                   capture_output=True)
    return built


def pk3(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def spec_for(folder: Path, built: Path, **group) -> Path:
    group = {"name": "music", "set": "train", "role": "instrumental", "archive": PK3,
             "include": ["music/*"], "exclude": ["music/voc-*"], **group}
    spec = folder / "corpus.yaml"
    spec.write_text(yaml.safe_dump({"packages": [{
        "package": PACKAGE, "version": VERSION, "sha256": hashlib.sha256(built.read_bytes()).hexdigest(),
        "license": "GPL-2+", "attribution": "Test music", "groups": [group], "deb": str(built)}]}))
    return spec


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    members = {"music/theme.ogg": tone(2.0, 220.0), "music/battle.ogg": tone(1.5, 262.0),
               "music/voc-choir.ogg": tone(1.0, 294.0), "music/notes.txt": b"not audio",
               "maps/level.ogg": tone(1.0, 196.0), "../up.ogg": tone(0.5, 440.0), "/abs.ogg": tone(0.5, 494.0)}
    return build_deb(tmp_path_factory.mktemp("pkg") / "tree", pk3(members))


def test_a_group_takes_its_audio_from_inside_a_zip_archive(deb, tmp_path):
    out = tmp_path / "corpus"
    tracks = build_corpus(spec_for(tmp_path, deb), "train", out, tmp_path / "cache")

    assert sorted(t.title for t in tracks) == [f"{PACKAGE} battle", f"{PACKAGE} theme"]
    manifest = out / "sources.yaml"
    for source in load_sources(manifest):
        path = file_url_path(resolve_url(source.url, manifest.parent))
        assert path.resolve().is_relative_to(out.resolve())
        audio, rate = sf.read(path)
        assert rate == RATE and audio.shape[1] == 2 and np.abs(audio).max() > 0.1  # decodable audio, not the zip
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert written == ["ATTRIBUTION.md", "battle.ogg", "sources.yaml", "theme.ogg"]  # no .pk3, no `..` escape
    assert not (tmp_path / "up.ogg").exists()


def test_globs_that_match_nothing_inside_the_archive_name_it(deb, tmp_path):
    with pytest.raises(CorpusError, match=f"selects no audio file inside {PK3}"):
        build_corpus(spec_for(tmp_path, deb, include=["sound/*"]), "train", tmp_path / "corpus", tmp_path / "cache")


def test_an_archive_that_is_no_zip_is_a_corpus_error(tmp_path):
    built = build_deb(tmp_path / "tree", b"PK but not really a zip file")
    with pytest.raises(CorpusError, match=f"{PK3}: the archive inside the package cannot be read as a zip"):
        build_corpus(spec_for(tmp_path, built), "train", tmp_path / "corpus", tmp_path / "cache")
