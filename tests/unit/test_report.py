"""The listening report: per-track numbers, spectrograms and players, loaded by a real browser offline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.browser import external_references, media_status, needs_chromium
from vocalsep.report import write_report
from vocalsep.scoring import Track

RATE = 8000


def _report(folder):
    rng = np.random.default_rng(0)
    examples, rows = [], []
    for i in range(2):
        vocals = (0.1 * rng.standard_normal((2, RATE * 2))).astype(np.float32)
        accompaniment = (0.1 * rng.standard_normal((2, RATE * 2))).astype(np.float32)
        track = Track(f"track_{i:02d}", vocals + accompaniment, vocals, accompaniment, RATE)
        examples.append((track, 0.8 * vocals))
        rows.append({"track": track.name, "sdr": 3.0 + i, "si_sdr": 2.5, "si_sdri": 5.25, "mixture_sdr": 0.1,
                     "mixture_si_sdr": -2.75, "irm_sdr": 12.0, "irm_si_sdr": 11.5,
                     # a silent pass-through output is NaN: an empty cell, left out of the median
                     "pass_through": [100.0, float("nan")][i], "leak": -3.5, "level_spread": 0.75})
    return write_report(folder, {"sdr": 3.5, "si_sdr": 2.5, "si_sdri": 5.25}, pd.DataFrame(rows), examples)


def test_the_page_holds_each_track_beside_mixture_and_oracle_with_local_media_only(tmp_path):
    page = _report(tmp_path / "eval")
    text = page.read_text()
    for cell in ("<td>3.00</td>", "<td>4.00</td>", "<td>5.25</td>", "<td>-2.75</td>", "<td>11.50</td>", "IRM SI-SDR",
                 "<td>100.00</td>", "<td>-3.50</td>", "<td>0.75</td>", "pass-through", "leak", "level spread"):
        assert cell in text
    assert text.count("<td>100.00</td>") == 2  # track_00 and the median; track_01's NaN is an empty cell
    assert external_references(page) == []
    for track in ("track_00", "track_01"):
        assert (tmp_path / "eval" / "img" / f"{track}.png").is_file()
        for stem in ("mixture", "vocals", "estimate"):
            assert f"src='audio/{track}/{stem}.ogg'" in text and (tmp_path / "eval/audio" / track / f"{stem}.ogg").is_file()


@needs_chromium
def test_chromium_loads_every_player_and_image_without_network(tmp_path):
    page = _report(tmp_path / "eval")
    assert media_status(page) == {"total": 8, "loaded": 8, "failed": []}
    (tmp_path / "eval/audio/track_01/estimate.ogg").unlink()  # the check can fail: a missing file is named
    status = media_status(page)
    assert status["loaded"] == 7 and status["failed"] == ["audio/track_01/estimate.ogg"]
