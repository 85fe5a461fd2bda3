"""Real corpus from Debian packages: a tiny .deb built here goes through spec, fetch, extract, join and manifest."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from vocalsep.corpus.build import build_corpus
from vocalsep.corpus.debs import extract_groups, fetch_deb
from vocalsep.corpus.join import JoinParams, join_utterances
from vocalsep.corpus.spec import CorpusError, Group, load_spec
from vocalsep.sources import file_url_path, load_sources, resolve_url
from vocalsep.stages import corpus as corpus_stage

PACKAGE, VERSION, LICENSE = "vocalsep-test-sounds", "1:2.0-1", "CC-BY-SA-3.0"
ATTRIBUTION = "Test prompts, the vocalsep test suite"
FADE = 0.02  # seconds of raised-cosine fade at each end of an utterance: the only part trimming may take
VOICE_DIR, MUSIC_DIR = "usr/share/test-sounds/voices", "usr/share/games/test-game/music"
# file inside the package -> (seconds, rate, channels)
VOICES = {
    f"{VOICE_DIR}/en/hello.wav": (0.4, 8000, 1),
    f"{VOICE_DIR}/en/goodbye.wav": (1.2, 8000, 1),
    f"{VOICE_DIR}/en/yes.wav": (0.3, 8000, 1),
    f"{VOICE_DIR}/en/thanks.wav": (0.8, 8000, 1),
    f"{VOICE_DIR}/it/ciao.wav": (1.5, 44100, 1),
    f"{VOICE_DIR}/it/grazie.ogg": (0.7, 44100, 1),
    f"{VOICE_DIR}/it/prego.ogg": (1.0, 44100, 2),
}
EXCLUDED = f"{VOICE_DIR}/silence/pause.wav"
MUSIC = {f"{MUSIC_DIR}/theme.ogg": (6.0, 44100, 2), f"{MUSIC_DIR}/battle.wav": (6.0, 44100, 2)}
JINGLE = "usr/share/games/test-game/jingles/win.wav"  # an eval group: never in the train set
GROUPS = [
    {"name": "voices", "set": "train", "role": "acapella", "join": True,
     "include": [f"{VOICE_DIR}/*"], "exclude": ["*/silence/*"]},
    {"name": "music", "set": "train", "role": "instrumental", "include": [f"{MUSIC_DIR}/*"]},
    {"name": "jingles", "set": "eval", "role": "instrumental", "include": ["usr/share/games/test-game/jingles/*"]},
]


def vowel(seconds: float, rate: int, channels: int, f0: float) -> np.ndarray:
    """A vowel-like harmonic tone `(frames, channels)`: formant-weighted harmonics, syllabic swell, short fades."""
    t = np.arange(int(seconds * rate)) / rate
    tone = np.zeros_like(t)
    for k in range(1, int(0.45 * rate / f0)):
        weight = np.exp(-(((k * f0) - 700) / 300) ** 2) + 0.5 * np.exp(-(((k * f0) - 1200) / 400) ** 2) + 0.05
        tone += weight / k * np.sin(2 * np.pi * k * f0 * t)
    tone *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    fade = int(FADE * rate)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    tone[:fade] *= ramp
    tone[-fade:] *= ramp[::-1]
    tone = 0.5 * tone / np.abs(tone).max()
    return np.stack([tone * (0.8 + 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def write_sound(path: Path, seconds: float, rate: int, channels: int, f0: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = vowel(seconds, rate, channels, f0)
    if path.suffix == ".ogg":
        sf.write(path, audio, rate, format="OGG", subtype="VORBIS")
    else:
        sf.write(path, audio, rate, subtype="PCM_16")


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    """A real .deb built with dpkg-deb: voices at 8 and 44.1 kHz (wav, ogg), music, an excluded folder, a doc."""
    root = tmp_path_factory.mktemp("pkg") / "tree"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: {VERSION}\nArchitecture: all\n"
        "Maintainer: vocalsep tests <tests@example.org>\nDescription: test sounds for vocalsep\n")
    everything = {**VOICES, **MUSIC, EXCLUDED: (0.5, 8000, 1), JINGLE: (2.0, 44100, 2)}
    for n, (name, (seconds, rate, channels)) in enumerate(everything.items()):
        write_sound(root / name, seconds, rate, channels, f0=110.0 + 15 * n)
    (root / VOICE_DIR / "README.txt").write_text("matches the include glob but is no audio\n")
    (root / "usr/share/doc" / PACKAGE).mkdir(parents=True)
    (root / "usr/share/doc" / PACKAGE / "copyright").write_text("CC-BY-SA-3.0\n")
    built = root.parent / f"{PACKAGE}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(built)], check=True,
                   capture_output=True)
    return built


def write_spec(folder: Path, packages: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "corpus.yaml"
    spec.write_text(yaml.safe_dump({"packages": packages}, sort_keys=False))
    return spec


def entry(built: Path, **changes) -> dict:
    return {"package": PACKAGE, "version": VERSION, "sha256": hashlib.sha256(built.read_bytes()).hexdigest(),
            "license": LICENSE, "attribution": ATTRIBUTION, "groups": GROUPS, "deb": str(built), **changes}


def silent_runs(audio: np.ndarray, rate: int, min_seconds: float = 0.1) -> int:
    """How many runs of exact digital silence at least `min_seconds` long `audio` holds: the inserted pauses."""
    silent = np.concatenate([[False], ~audio.any(axis=1), [False]]).astype(np.int8)
    starts, ends = np.flatnonzero(np.diff(silent) == 1), np.flatnonzero(np.diff(silent) == -1)
    return int(np.sum(ends - starts >= min_seconds * rate))


def test_build_corpus_from_a_real_deb(deb, tmp_path):
    (tmp_path / "debs").mkdir()
    (tmp_path / "debs" / deb.name).write_bytes(deb.read_bytes())
    spec = write_spec(tmp_path / "spec", [entry(deb, deb=f"../debs/{deb.name}")])  # relative to the spec's folder
    out, cache = tmp_path / "corpus", tmp_path / "cache"
    tracks = build_corpus(spec, "train", out, cache)

    manifest = out / "sources.yaml"
    sources = load_sources(manifest)
    assert len(sources) == len(tracks)
    for source in sources:
        path = file_url_path(resolve_url(source.url, manifest.parent))
        assert path.is_file() and path.resolve().is_relative_to(out.resolve())
        assert (source.license, source.package, source.version) == (LICENSE, PACKAGE, VERSION)
        assert source.sample_rate == sf.info(str(path)).samplerate

    music = [s for s in sources if s.role == "instrumental"]
    assert sorted(s.title for s in music) == [f"{PACKAGE} battle", f"{PACKAGE} theme"]
    assert all(s.sample_rate == 44100 for s in music)

    voices = [t for t in tracks if t.role == "acapella"]
    assert len(voices) < len(VOICES)
    assert sorted(m for t in voices for m in t.members) == sorted(Path(v).name for v in VOICES)  # each once
    assert {t.sample_rate for t in voices} == {8000, 44100}
    assert [s.title for s in sources if s.role == "acapella"] == [f"{PACKAGE} voices {n}" for n in (1, 2)]
    longest = max(seconds for seconds, _, _ in VOICES.values())
    for track in voices:
        own = {Path(name).name: spec for name, spec in VOICES.items() if spec[1] == track.sample_rate}
        assert set(track.members) == set(own)  # 8 kHz prompts never share a track with 44.1 kHz speech
        audio, rate = sf.read(track.path, always_2d=True)
        assert rate == track.sample_rate
        assert audio.shape[1] == max(channels for _, _, channels in own.values())
        seconds = audio.shape[0] / rate
        assert seconds > longest
        pauses = (len(own) + 1) * np.array(JoinParams().pause_seconds)
        assert sum(s - 2 * FADE for s, _, _ in own.values()) + pauses[0] <= seconds  # no voice lost
        assert seconds <= sum(s for s, _, _ in own.values()) + pauses[1]
        assert silent_runs(audio, rate) == len(own) + 1  # a pause before, between and after the utterances

    kept = {t.path.relative_to(out).as_posix() for t in tracks}
    assert not any("silence" in k or "pause" in k or "win" in k for k in kept)
    assert not any("silence" in m or "pause" in m for t in tracks for m in t.members)
    attribution = (out / "ATTRIBUTION.md").read_text()
    row = next(line for line in attribution.splitlines() if line.startswith(f"| {PACKAGE} "))
    for text in (VERSION, entry(deb)["sha256"], LICENSE, ATTRIBUTION, f"| {len(tracks)} |"):
        assert text in row


def test_eval_set_holds_only_eval_groups(deb, tmp_path):
    out = tmp_path / "eval"
    tracks = build_corpus(write_spec(tmp_path, [entry(deb)]), "eval", out, tmp_path / "cache")
    assert [(t.role, t.title, t.sample_rate) for t in tracks] == [("instrumental", f"{PACKAGE} win", 44100)]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "ATTRIBUTION.md", f"instrumental/{PACKAGE}/win.wav", "sources.yaml"]


def test_second_build_reuses_the_cached_deb(deb, tmp_path):
    local = tmp_path / "local.deb"
    local.write_bytes(deb.read_bytes())
    spec, cache = write_spec(tmp_path / "spec", [entry(local)]), tmp_path / "cache"
    build_corpus(spec, "train", tmp_path / "a", cache)
    (cached,) = cache.glob("*.deb")
    assert "%3a" in cached.name  # the epoch colon of 1:2.0-1 is escaped as in apt's file names
    stamp = cached.stat().st_mtime_ns
    local.unlink()  # reading the spec's .deb again would now fail
    build_corpus(spec, "train", tmp_path / "b", cache)
    assert list(cache.glob("*.deb")) == [cached] and cached.stat().st_mtime_ns == stamp
    assert (tmp_path / "a" / "sources.yaml").read_text() == (tmp_path / "b" / "sources.yaml").read_text()


def test_a_corrupt_cached_deb_is_fetched_again(deb, tmp_path):
    package = load_spec(write_spec(tmp_path, [entry(deb)]))[0]
    cached = fetch_deb(package, tmp_path / "cache")
    cached.write_bytes(b"not the package")
    assert fetch_deb(package, tmp_path / "cache") == cached
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == package.sha256


def test_wrong_sha256_names_package_and_both_hashes(deb, tmp_path):
    pinned = "0" * 64
    spec = write_spec(tmp_path, [entry(deb, sha256=pinned)])
    with pytest.raises(CorpusError) as err:
        build_corpus(spec, "train", tmp_path / "out", tmp_path / "cache")
    message = str(err.value)
    assert PACKAGE in message and pinned in message and hashlib.sha256(deb.read_bytes()).hexdigest() in message
    assert not list((tmp_path / "cache").rglob("*.deb"))  # the wrong bytes are not cached


@pytest.mark.parametrize("name", ["drascula-music", "drascula-french", "fillets-ng-data", "fillets-ng-data-cs",
                                  "fillets-ng"])
def test_reserved_packages_are_refused(deb, tmp_path, name):
    with pytest.raises(CorpusError, match=f"{name} is reserved for independent evaluation"):
        load_spec(write_spec(tmp_path, [entry(deb, package=name)]))


@pytest.mark.parametrize("change, field", [
    ({"joins": True}, "unknown field(s) joins"),
    ({"set": "test"}, "set is 'test'"),
    ({"set": None}, "set is None"),
    ({"role": "vocals"}, "role is 'vocals'"),
    ({"include": "usr/*"}, "include must be a non-empty list"),
    ({"conditions": "familiar"}, "conditions is 'familiar'"),
    ({"set": "train", "conditions": "seen"}, "only in an eval group"),
])
def test_bad_group_is_refused_naming_the_field(deb, tmp_path, change, field):
    spec = write_spec(tmp_path, [entry(deb, groups=[{**GROUPS[0], **change}])])
    with pytest.raises(CorpusError) as err:
        load_spec(spec)
    assert str(spec) in str(err.value) and PACKAGE in str(err.value) and "group 1" in str(err.value)
    assert field in str(err.value)


@pytest.mark.parametrize("change, message", [
    ({"debs": "x.deb"}, "unknown field(s) debs"),  # a misspelt deb: must not fall back to apt-get silently
    ({"sha256": "abc"}, "sha256 must be 64 hex digits"),
    ({"license": ""}, "missing field(s) license"),
    ({"groups": [GROUPS[0], {**GROUPS[1], "name": "voices"}]}, "group name(s) voices used twice"),
])
def test_bad_package_is_refused(deb, tmp_path, change, message):
    with pytest.raises(CorpusError) as err:
        load_spec(write_spec(tmp_path, [entry(deb, **change)]))
    assert message in str(err.value)


def test_group_selecting_no_audio_is_an_error(deb, tmp_path):
    spec = write_spec(tmp_path, [entry(deb, groups=[{**GROUPS[1], "include": ["usr/share/nothing/*"]}])])
    with pytest.raises(CorpusError, match="group 'music' selects no audio file.*usr/share/nothing"):
        build_corpus(spec, "train", tmp_path / "out", tmp_path / "cache")


def test_a_package_listed_twice_is_refused(deb, tmp_path):
    with pytest.raises(CorpusError, match="listed twice"):
        load_spec(write_spec(tmp_path, [entry(deb), entry(deb)]))


def tar_xz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def regular(name: str, data: bytes = b"RIFF0000WAVE") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    """A Unix `ar` archive, the container of a .deb."""
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return out


def test_hostile_deb_writes_nothing_outside_the_destination(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    absolute = f"/tmp/vocalsep-escape-{uuid.uuid4().hex}.wav"
    data = tar_xz([
        regular("../escape.wav"), regular("./../escape2.wav"), regular("./usr/share/../../../up.wav"),
        regular(absolute), link("./usr/share/lnk", str(outside)), regular("./usr/share/lnk/via-link.wav"),
        link("./usr/share/sounds/evil.wav", str(outside / "target.wav")), regular("./usr/share/sounds/ok.wav"),
    ])
    control = tar_xz([regular("./control", b"Package: evil\nVersion: 1\nArchitecture: all\n"
                                           b"Maintainer: x <x@example.org>\nDescription: x\n")])
    deb = tmp_path / "evil.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", data)]))
    dest = tmp_path / "work" / "dest"
    dest.mkdir(parents=True)

    files = extract_groups(deb, [Group(name="all", set="train", role="acapella", include=("*",))], dest)

    assert files == {"all": [dest / "usr/share/lnk/via-link.wav", dest / "usr/share/sounds/ok.wav"]}
    written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if not p.is_dir())
    assert written == ["usr/share/lnk/via-link.wav", "usr/share/sounds/ok.wav"]  # `..` refused, not renamed
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert list(outside.iterdir()) == [] and not Path(absolute).exists()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["dest"]


def test_a_file_that_is_no_deb_is_a_corpus_error(tmp_path):
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"this is not an ar archive")
    with pytest.raises(CorpusError, match="dpkg-deb cannot read it"):
        extract_groups(bad, [Group(name="all", set="train", role="acapella", include=("*",))], tmp_path / "dest")


def test_join_utterances_fills_tracks_and_uses_every_file_once(tmp_path):
    files = []
    for n in range(12):
        path = tmp_path / f"u{n:02d}.wav"
        write_sound(path, 0.3 + 0.1 * n, 8000 if n % 3 else 16000, 1, f0=100.0 + 10 * n)
        files.append(path)
    params = JoinParams(track_seconds=2.0, pause_seconds=(0.2, 0.4), seed=1)
    tracks = join_utterances(files, params, np.random.default_rng(1))
    assert sorted(p for _, _, members in tracks for p in members) == files
    for audio, rate, members in tracks:
        assert {sf.info(str(p)).samplerate for p in members} == {rate}
        assert audio.dtype == np.float32 and audio.shape[1] == 1
        assert audio.shape[0] >= params.track_seconds / 3 * rate  # a short tail joins the previous track
    for rate in (8000, 16000):
        lengths = [a.shape[0] / r for a, r, _ in tracks if r == rate]
        assert len(lengths) >= 2 and max(lengths) >= params.track_seconds
    again = join_utterances(files, params, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for (a, _, _), (b, _, _) in zip(tracks, again, strict=True))


def test_undecodable_utterance_is_left_out(tmp_path):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    write_sound(good, 0.5, 8000, 1, f0=150.0)
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    tracks = join_utterances([bad, good], JoinParams(), np.random.default_rng(0))
    assert [members for _, _, members in tracks] == [[good]]


def write_params(tmp_path: Path, corpus: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"paths": {"corpus": str(tmp_path / "corpus")}, "corpus": corpus}))
    return path


def test_stage_with_set_none_writes_an_empty_corpus_and_fetches_nothing(tmp_path):
    stale = tmp_path / "corpus" / "acapella" / "old.flac"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier build")
    params = write_params(tmp_path, {"set": "none", "spec": str(tmp_path / "no-spec.yaml"),
                                     "cache": str(tmp_path / "cache")})
    assert corpus_stage.main(["--params", str(params)]) == 0
    assert [p.name for p in (tmp_path / "corpus").iterdir()] == ["README.md"]
    assert "corpus.set is none" in (tmp_path / "corpus" / "README.md").read_text()
    assert not (tmp_path / "cache").exists()


def test_stage_builds_the_set_with_its_join_params(deb, tmp_path):
    spec = write_spec(tmp_path / "spec", [entry(deb)])
    params = write_params(tmp_path, {"set": "train", "spec": str(spec), "cache": str(tmp_path / "cache"),
                                     "track_seconds": 1.0, "pause_seconds": [0.1, 0.2]})
    assert corpus_stage.main(["--params", str(params)]) == 0
    sources = load_sources(tmp_path / "corpus" / "sources.yaml")
    voices = [s for s in sources if s.role == "acapella"]
    assert len(voices) > 2  # 1 s tracks: more than one per sample rate
    assert sorted({s.sample_rate for s in voices}) == [8000, 44100]


def test_stage_error_is_one_line_and_exit_2(tmp_path, capsys):
    params = write_params(tmp_path, {"set": "train", "spec": str(tmp_path / "missing.yaml"),
                                     "cache": str(tmp_path / "cache")})
    assert corpus_stage.main(["--params", str(params)]) == 2
    assert "missing.yaml: corpus spec not found" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_a_failure_mid_extraction_stops_dpkg_deb_and_raises(tmp_path):
    """A member that cannot be written (a file where its folder should be) raises at once: dpkg-deb, still
    writing more than a pipe holds, is stopped rather than left blocked (the call would hang otherwise)."""
    big = bytes(256 * 1024)
    data = tar_xz([regular("./usr/share/a.wav", big), regular("./usr/share/a.wav/b.wav", big),
                   *[regular(f"./usr/share/more/{i}.wav", big) for i in range(8)]])
    control = tar_xz([regular("./control", b"Package: x\nVersion: 1\nArchitecture: all\n"
                                           b"Maintainer: x <x@example.org>\nDescription: x\n")])
    deb = tmp_path / "x.deb"
    deb.write_bytes(ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", data)]))
    with pytest.raises(OSError):
        extract_groups(deb, [Group(name="all", set="train", role="acapella", include=("*",))], tmp_path / "dest")
