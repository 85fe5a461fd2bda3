"""The evaluation's pages and figures: the results page `<paths.plots>/eval.html` with its bar chart,
and the listening report `<paths.reports>/eval/index.html`, a page people look at.

The results page holds the medians, the per-track table and a bar chart embedded as PNG (no
JavaScript, no network), where `dvc plots show` would need vega-lite from the web.

Per test track: SDR, SI-SDR and SI-SDRi of the model next to the mixture and
the ideal-ratio-mask oracle, and the behavioural tests (pass-through, leak, level
spread; `vocalsep.scoring`); spectrograms of the mixture, the reference vocals
and the estimated vocals; `<audio>` players for all three. Everything is a
relative path inside the folder (`audio/<track>/*.ogg`, `img/<track>.png`), so
the page works from disk, from `dvc checkout`, or as the MLflow artifact
folder `report/`, with no network and no CDN: no script, style or font is
fetched. A small inline script counts the images and players that loaded and
writes the count into `#media-status` (what the headless-browser test reads).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from matplotlib.figure import Figure

from vocalsep.config import Params

log = logging.getLogger(__name__)

STEMS = ("mixture", "reference vocals", "estimated vocals")
FILES = ("mixture", "vocals", "estimate")
COLUMNS = (("sdr", "SDR"), ("si_sdr", "SI-SDR"), ("si_sdri", "SI-SDRi"), ("mixture_sdr", "mixture SDR"),
           ("mixture_si_sdr", "mixture SI-SDR"), ("irm_sdr", "IRM SDR"), ("irm_si_sdr", "IRM SI-SDR"),
           ("pass_through", "pass-through"), ("leak", "leak"), ("level_spread", "level spread"))

STATUS_SCRIPT = """
<script>
(function () {
  var media = Array.prototype.slice.call(document.querySelectorAll("img, audio"));
  var status = {total: media.length, loaded: 0, failed: []};
  var out = document.getElementById("media-status");
  function show() { out.textContent = JSON.stringify(status); }
  media.forEach(function (m) {
    var ok = function () { status.loaded += 1; show(); };
    var bad = function () { status.failed.push(m.getAttribute("src")); show(); };
    if (m.tagName === "IMG") {
      if (m.complete) { (m.naturalWidth > 0 ? ok : bad)(); }
      else { m.addEventListener("load", ok); m.addEventListener("error", bad); }
    } else if (m.readyState >= 1) { ok(); }
    else { m.addEventListener("loadedmetadata", ok); m.addEventListener("error", bad); }
  });
  show();
})();
</script>"""

STYLE = """<style>
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.track { margin-top: 2em; } .players { display: flex; gap: 1.5em; flex-wrap: wrap; }
.players figure { margin: 0; } img { max-width: 100%; }
</style>"""


def spectrogram_figure(name: str, panels: list[tuple[str, np.ndarray]], rate: int) -> Figure:
    """Log-power spectrograms (channel mean) stacked one per panel."""
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    for ax, (title, audio) in zip(figure.subplots(len(panels), 1, sharex=True), panels):
        with np.errstate(divide="ignore"):  # silent bins: log10(0) = -inf, drawn at vmin
            ax.specgram(audio.mean(axis=0), NFFT=1024, noverlap=768, Fs=rate, cmap="magma", vmin=-140)
        ax.set_facecolor("black")  # digital silence is -inf dB: drawn as the floor, not as a white hole
        ax.set_title(f"{name}: {title}")
        ax.set_ylabel("Hz")
    figure.axes[-1].set_xlabel("seconds")
    return figure


def _cell(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{float(value):.2f}"


def _write_track(folder: Path, track: Any, estimate: np.ndarray) -> str:
    """The track's audio and spectrogram files; returns its HTML section."""
    audio_dir = folder / "audio" / track.name
    audio_dir.mkdir(parents=True, exist_ok=True)
    signals = (track.mixture, track.vocals, estimate)
    players = []
    for label, stem, audio in zip(STEMS, FILES, signals):
        path = audio_dir / f"{stem}.ogg"
        sf.write(path, np.clip(audio.T, -1.0, 1.0), track.sample_rate, format="OGG", subtype="VORBIS")
        players.append(f"<figure><figcaption>{label}</figcaption><audio controls preload='metadata' "
                       f"src='audio/{html.escape(track.name)}/{stem}.ogg'></audio></figure>")
    image = folder / "img" / f"{track.name}.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    spectrogram_figure(track.name, list(zip(STEMS, signals)), track.sample_rate).savefig(image, dpi=72)
    return (f"<section class='track'><h3>{html.escape(track.name)}</h3><div class='players'>{''.join(players)}</div>"
            f"<img alt='spectrograms of {html.escape(track.name)}' src='img/{html.escape(track.name)}.png'></section>")


def write_report(folder: Path, summary: dict, table: pd.DataFrame, examples: list[tuple[Any, np.ndarray]],
                 title: str = "vocalsep evaluation") -> Path:
    """Write `folder/index.html` with its audio and images (the folder is replaced); returns the page."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    head = "".join(f"<th>{label}</th>" for _, label in COLUMNS)
    rows = "".join(f"<tr><td><a href='#{html.escape(str(r['track']))}'>{html.escape(str(r['track']))}</a></td>"
                   + "".join(f"<td>{_cell(r.get(key))}</td>" for key, _ in COLUMNS) + "</tr>"
                   for r in table.to_dict("records"))
    medians = "".join(f"<td>{_cell(table[key].median(skipna=True) if key in table else summary.get(key))}</td>"
                      for key, _ in COLUMNS)  # every column's median over tracks, as eval.json computes its own
    sections = "".join(f"<div id='{html.escape(track.name)}'>{_write_track(folder, track, estimate)}</div>"
                       for track, estimate in examples)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}</head>"
            f"<body><h1>{html.escape(title)}</h1>"
            "<p>dB; SI-SDRi = SI-SDR(estimate) - SI-SDR(mixture). The ideal-ratio-mask oracle (IRM) is the "
            "target to beat. Behavioural tests: pass-through = SI-SDR of the output when the vocals alone go in "
            "(higher is better, capped at 100 = exact); leak = output level relative to the input when the "
            "accompaniment alone goes in (lower is better, 0 = passed unchanged, -120 = silent); level spread = "
            "max - min of SI-SDRi over input gains (lower is better, 0 = level-invariant). "
            "Players and spectrograms below.</p>"
            f"<table><tr><th>track</th>{head}</tr>{rows}<tr><th>median</th>{medians}</tr></table>"
            f"{sections}<pre id='media-status'>not run</pre>{STATUS_SCRIPT}</body></html>")
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    log.info("listening report: %s (%d tracks)", index, len(examples))
    return index


def bar_chart(table: pd.DataFrame) -> Figure:
    """Per-track horizontal bars: SDR and SI-SDR of the model next to the mixture baseline."""
    figure = Figure(figsize=(10, 1.5 + 0.45 * len(table)), layout="constrained")
    y = np.arange(len(table))
    for ax, key, label in zip(figure.subplots(1, 2, sharey=True), ("sdr", "si_sdr"), ("SDR (dB)", "SI-SDR (dB)")):
        ax.barh(y - 0.2, table[key], height=0.4, label="model")
        ax.barh(y + 0.2, table[f"mixture_{key}"], height=0.4, label="mixture (baseline)", color="0.7")
        ax.set_yticks(y, table["track"])
        ax.set_xlabel(label)
        ax.axvline(0, color="k", linewidth=0.5)
        ax.invert_yaxis()
    figure.axes[0].legend(loc="lower right", fontsize="small")
    return figure


def spectrograms(track: Any, estimate: np.ndarray) -> Figure:
    """Mixture, true vocals and estimated vocals (channel mean) of a `vocalsep.scoring.Track` as
    log-power spectrograms."""
    return spectrogram_figure(track.name, list(zip(STEMS, (track.mixture, track.vocals, estimate))),
                              track.sample_rate)


def html_report(summary: dict, table: pd.DataFrame, png: Path) -> str:
    """A page with the summary, the per-track table and the bar chart embedded as base64 PNG."""
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in summary.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>vocalsep evaluation</title></head><body>"
        f"<h1>vocalsep evaluation</h1><h2>medians over tracks</h2><table>{rows}</table>"
        f"<h2>per track</h2>{table.to_html(index=False, float_format=lambda v: f'{v:.3f}')}"
        f"<img alt='per-track SDR and SI-SDR' src='data:image/png;base64,{image}'></body></html>"
    )


def write_outputs(params: Params, summary: dict, table: pd.DataFrame) -> list[Path]:
    """eval.json, eval_tracks.csv, eval_tracks.png and eval.html; returns their paths."""
    metrics, plots = Path(params.paths.metrics), Path(params.paths.plots)
    metrics.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    json_path, csv_path, png_path = params.paths.eval_metrics, plots / "eval_tracks.csv", plots / "eval_tracks.png"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    table.to_csv(csv_path, index=False, float_format="%.4f")
    bar_chart(table).savefig(png_path, dpi=100)
    html_path = plots / "eval.html"
    html_path.write_text(html_report(summary, table, png_path))
    return [json_path, csv_path, png_path, html_path]
