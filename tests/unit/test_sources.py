"""Sources manifests: validation errors name file, entry and field; file URLs resolve; ids are stable."""

from __future__ import annotations

from pathlib import Path

import pytest

from vocalsep.demo.corpus import demo_path, write_manifest
from vocalsep.errors import VocalsepError
from vocalsep.sources import SourcesError, file_url_path, load_sources, resolve_url, source_id


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "songs.yaml"
    path.write_text(text)
    return path


def test_valid_manifest_parses_with_ids(tmp_path):
    path = write(tmp_path, "- url: https://example.org/a.wav\n  role: acapella\n  title: 1984\n"
                           "- url: file:b.flac\n  role: instrumental\n  license: CC0\n")
    first, second = load_sources(path)
    assert (first.role, first.title, first.license) == ("acapella", "1984", None)
    assert (second.role, second.license) == ("instrumental", "CC0")
    # ids name the files in data/raw, so they must never change: the value `printf %s URL | sha1sum` gives
    assert first.id == "6ae0f4193d31"


def test_ids_are_stable_and_distinct():
    assert source_id("https://x/a.wav") == source_id("https://x/a.wav")
    assert source_id("https://x/a.wav") != source_id("https://y/a.wav")
    assert len(source_id("file:a.wav")) == 12


@pytest.mark.parametrize("entry, field", [
    ("- url: https://x/a.wav\n  role: vocals\n", "'role'"),
    ("- role: acapella\n", "'url'"),
    ("- url: ''\n  role: acapella\n", "'url'"),
    ("- url: songs/a.wav\n  role: acapella\n", "'url'"),
    ("- url: https://x/a.wav\n  role: acapella\n  artist: me\n", "artist"),
    ("- url: https://x/a.wav\n  role: acapella\n  title: [a, b]\n", "'title'"),
])
def test_bad_entry_names_file_entry_and_field(tmp_path, entry, field):
    good = "- url: https://x/ok.wav\n  role: instrumental\n"
    path = write(tmp_path, good + entry)
    with pytest.raises(SourcesError) as err:
        load_sources(path)
    message = str(err.value)
    assert str(path) in message and "entry 2" in message and field in message


def test_duplicate_url_names_both_entries(tmp_path):
    path = write(tmp_path, "- url: https://x/a.wav\n  role: acapella\n- url: https://x/a.wav\n  role: instrumental\n")
    with pytest.raises(SourcesError, match="entry 2.*repeats entry 1"):
        load_sources(path)


@pytest.mark.parametrize("text, hint", [("url: https://x\n", "non-empty list"), ("[]\n", "non-empty list"),
                                        ("- url: [unclosed\n", "not valid YAML")])
def test_bad_manifest_shape(tmp_path, text, hint):
    with pytest.raises(SourcesError, match=hint):
        load_sources(write(tmp_path, text))


def test_missing_manifest_says_what_to_do(tmp_path):
    with pytest.raises(VocalsepError, match="download.sources"):
        load_sources(tmp_path / "nope.yaml")


def test_relative_file_url_resolves_against_manifest_folder(tmp_path):
    url = resolve_url("file:../data/my%20song.wav", tmp_path / "sources")
    assert url.startswith("file:///")
    assert file_url_path(url) == (tmp_path / "data" / "my song.wav").resolve()


@pytest.mark.parametrize("url", ["file:///abs/a.wav", "https://www.youtube.com/watch?v=x", "http://127.0.0.1:8/a"])
def test_other_urls_are_unchanged(tmp_path, url):
    assert resolve_url(url, tmp_path) == url


def test_example_youtube_manifest_is_valid(repo_root):
    sources = load_sources(repo_root / "sources" / "example-youtube.yaml")
    assert {s.role for s in sources} == {"acapella", "instrumental"}


def test_demo_manifest_matches_default_params(repo_root, real_params, tmp_path):
    manifest = repo_root / "sources" / "demo.yaml"
    sources = load_sources(manifest)
    roles = [s.role for s in sources]
    assert roles.count("acapella") == real_params.demo.acapellas
    assert roles.count("instrumental") == real_params.demo.instrumentals
    counters = {"acapella": 0, "instrumental": 0}
    for source in sources:
        expected = demo_path(repo_root / real_params.paths.demo, source.role, counters[source.role])
        assert file_url_path(resolve_url(source.url, manifest.parent)) == expected.resolve()
        counters[source.role] += 1
    regenerated = tmp_path / "sources" / "demo.yaml"
    assert write_manifest(real_params, regenerated, root=tmp_path) == manifest.read_text()


def test_the_same_audio_under_two_urls_is_used_once():
    from vocalsep.stages.download import mark_duplicates

    def record(url, sha, status="ok"):
        return {"url": url, "sha256": sha, "status": status, "reason": None}

    records = mark_duplicates([record("https://a", "f" * 64), record("https://b", "0" * 64),
                               record("https://c", "f" * 64), record("https://d", None, "failed")])
    assert [r["status"] for r in records] == ["ok", "ok", "failed", "failed"]
    assert "same audio as https://a" in records[2]["reason"] and records[3]["reason"] is None


def test_corpus_fields_package_version_and_sample_rate(tmp_path):
    path = write(tmp_path, "- url: file:acapella/a.flac\n  role: acapella\n  package: klettres-data\n"
                           "  version: '4:22.12.3-1'\n  sample_rate: 22050\n"
                           "- url: file:b.flac\n  role: instrumental\n  version: 1.16\n  sample_rate: 0\n"
                           "- url: https://x/c.wav\n  role: instrumental\n")
    first, second, third = load_sources(path)
    assert (first.package, first.version, first.sample_rate) == ("klettres-data", "4:22.12.3-1", 22050)
    assert (second.package, second.version, second.sample_rate) == (None, "1.16", 0)  # 0: rate unknown
    assert (third.package, third.version, third.sample_rate) == (None, None, None)


@pytest.mark.parametrize("value", ["'44100'", "44.1k", "44100.0", "22050.5", "-8000", "true", "[8000]"])
def test_sample_rate_must_be_a_whole_non_negative_number(tmp_path, value):
    path = write(tmp_path, f"- url: https://x/a.wav\n  role: acapella\n  sample_rate: {value}\n")
    with pytest.raises(SourcesError) as err:
        load_sources(path)
    message = str(err.value)
    assert str(path) in message and "entry 1" in message and "'sample_rate'" in message


@pytest.mark.parametrize("field", ["packages", "rate", "samplerate", "sha256"])
def test_corpus_like_unknown_fields_are_still_refused(tmp_path, field):
    path = write(tmp_path, f"- url: https://x/a.wav\n  role: acapella\n  {field}: 1\n")
    with pytest.raises(SourcesError, match=f"unknown field\\(s\\) {field}; allowed: .*sample_rate"):
        load_sources(path)


@pytest.mark.parametrize("field", ["package", "version"])
def test_package_and_version_must_be_text(tmp_path, field):
    path = write(tmp_path, f"- url: https://x/a.wav\n  role: acapella\n  {field}: [a, b]\n")
    with pytest.raises(SourcesError, match=f"entry 1: field '{field}' must be text"):
        load_sources(path)
