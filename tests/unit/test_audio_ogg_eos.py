"""Ogg files whose last page lacks the end-of-stream bit decode in full; a cut Ogg file never passes as whole.

Many real Ogg files (548 of klettres-data's) lack the bit; libsndfile logs
"Last page lacks an end-of-stream bit" for them and still decodes every frame.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocalsep.audio import read_audio
from vocalsep.errors import AudioError

SR = 44100
EOS = 0x04  # header_type flag of the last page of a logical stream


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()


def ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0, no final xor."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[(crc >> 24) ^ byte]
    return crc


def page_crc_ok(page: bytes) -> bool:
    return ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) == struct.unpack_from("<I", page, 22)[0]


def without_eos(data: bytes) -> bytes:
    """`data` with the end-of-stream flag of its last page cleared and that page's CRC recomputed."""
    last = data.rfind(b"OggS")
    page = bytearray(data[last:])
    assert page[5] & EOS and page_crc_ok(page), "the encoder's last page should carry the bit and a valid CRC"
    page[5] &= ~EOS
    page[22:26] = b"\0\0\0\0"
    struct.pack_into("<I", page, 22, ogg_crc(page))
    return data[:last] + bytes(page)


@pytest.fixture
def ogg(tmp_path) -> Path:
    """6 s of stereo Vorbis: a tone plus noise, so the stream spans many pages."""
    rng = np.random.default_rng(0)
    t = np.arange(6 * SR) / SR
    mono = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    path = tmp_path / "whole.ogg"
    sf.write(path, np.stack([mono, mono[::-1]], axis=1).astype(np.float32), SR, format="OGG", subtype="VORBIS")
    return path


def test_crc_matches_the_encoders_pages(ogg):
    data = ogg.read_bytes()
    starts = [i for i in range(len(data)) if data.startswith(b"OggS", i)]
    pages = [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]
    assert len(pages) > 3 and all(page_crc_ok(page) for page in pages)


def test_missing_end_of_stream_bit_still_decodes_every_frame(ogg, tmp_path):
    patched = tmp_path / "no-eos.ogg"
    patched.write_bytes(without_eos(ogg.read_bytes()))
    with sf.SoundFile(patched) as f:
        log = f.extra_info
    if "end-of-stream" not in log:
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} does not warn about a missing end-of-stream bit")
    with sf.SoundFile(ogg) as f:
        assert "end-of-stream" not in f.extra_info
    whole, sr = read_audio(ogg)
    decoded, patched_sr = read_audio(patched)
    assert patched_sr == sr == SR and decoded.shape == whole.shape == (6 * SR, 2)
    np.testing.assert_array_equal(decoded, whole)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_a_cut_ogg_file_is_rejected_as_truncated(ogg, tmp_path, fraction):
    """A file cut mid-page logs both a missing end-of-stream bit and junk after the last page."""
    data = ogg.read_bytes()
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(AudioError, match="cut.ogg: file is truncated"):
        read_audio(cut)


def test_trailing_junk_alone_is_not_truncation(ogg, tmp_path):
    """18 klettres-data files carry bytes after their last (end-of-stream) page and decode in full."""
    padded = tmp_path / "junk.ogg"
    padded.write_bytes(ogg.read_bytes() + b"\x00junk" * 8)
    with sf.SoundFile(padded) as f:
        if "Junk after the last page" not in f.extra_info:
            pytest.skip("this libsndfile does not report trailing junk")
    decoded, _ = read_audio(padded)
    np.testing.assert_array_equal(decoded, read_audio(ogg)[0])


def _streamed(path: Path) -> np.ndarray:
    from vocalsep.file_blocks import audio_blocks

    _, _, blocks = audio_blocks(path, frames=4096)
    return np.concatenate(list(blocks))


def test_the_streaming_reader_judges_ogg_files_as_read_audio_does(ogg, tmp_path):
    """`vocalsep stream` reads files block by block through the same truncation rules (audio.log_says_truncated)."""
    patched = tmp_path / "no-eos.ogg"
    patched.write_bytes(without_eos(ogg.read_bytes()))
    padded = tmp_path / "junk.ogg"
    padded.write_bytes(ogg.read_bytes() + b"\x00junk" * 8)
    whole, _ = read_audio(ogg)
    for path in (ogg, patched, padded):
        np.testing.assert_array_equal(_streamed(path), whole)
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(ogg.read_bytes()[: len(ogg.read_bytes()) // 2])
    with pytest.raises(AudioError, match="cut.ogg: file is truncated"):
        _streamed(cut)
