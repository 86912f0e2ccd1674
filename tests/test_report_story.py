"""The report tells the same story as the command line: the scoring each evaluation used, methods ranked with the
best in bold and the gain over the blurry input, one measurement panel, the loss before the machine's quantities,
the training time, and ``sei restore`` outputs beside their inputs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sei.report
from sei.cli import main
from sei.io.images import ImageFile, write_image_file
from sei.core.units import duration_text
from sei.io.outputs import RESTORE_RECORD
from sei.report import crops_figure, find, render

DEBLUR = {"task": "deblurring", "kernel": "Gaussian_R2", "sr_factor": None, "noise_level": 5.0}


def evaluation(root: Path, label: str, psnr: float, ssim: float = 0.8, lpips: float | None = None,
               kind: str | None = None, images: bool = False, **summary_extra) -> Path:
    folder = root / label
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text(f"name,psnr\na,{psnr}\n")
    settings = {"label": label, "dataset": "sample", "split": "val", "physics": DEBLUR}
    if kind:
        settings["model_kind"] = kind
    summary = {"psnr": psnr, "psnr_std": 0.5, "ssim": ssim, "ssim_std": 0.01, "n": 1, "settings": settings,
               **summary_extra}
    if lpips is not None:
        summary.update(lpips=lpips, lpips_std=0.01)
    (folder / "summary.json").write_text(json.dumps(summary))
    if images:
        rng = np.random.default_rng(0)
        (folder / "images").mkdir()
        reference = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        blurry = np.clip(reference.astype(int) + 20, 0, 255).astype(np.uint8)
        estimate = blurry if kind == "identity" else np.clip(reference.astype(int) + 5, 0, 255).astype(np.uint8)
        for name, image in (("reference", reference), ("input", blurry), ("estimate", estimate)):
            Image.fromarray(image).save(folder / "images" / f"a_{name}.png")
    return folder


def training_run(root: Path, name: str, seconds: float | None = None) -> Path:
    folder = root / name
    (folder / "logs" / "csv").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "name: %s\nphysics: {task: deblurring, kernel: Box_R2, noise_level: 5}\ndata: {dataset: sample}\n"
        "model: {backbone: unet-tiny}\nloss: {method: sei}\ntrain: {steps: 1000, lr: 0.001}\n" % name)
    with open(folder / "logs" / "csv" / "metrics.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "step", "train/loss", "train/sure", "train/lr", "train/data_wait_fraction",
                         "train/samples_per_s"])
        writer.writerows([[0, 9, 0.5, 0.4, 1e-3, 0.2, 100], [0, 19, 0.4, 0.3, 1e-3, 0.25, 110]])
    if seconds is not None:
        (folder / "weights.pt").write_bytes(b"w")
        (folder / "train_summary.json").write_text(json.dumps({"steps": 1000, "epochs": 3, "seconds": seconds}))
    return folder


def metrics_table(page: str) -> str:
    return page[page.index("<h2>Metrics</h2>"):page.index("</table>", page.index("<h2>Metrics</h2>"))]


class TestScoringFootnote:
    def test_the_footnote_says_what_the_evaluation_recorded(self, tmp_path):
        evaluation(tmp_path, "sei", 30, scoring="uint16 data, its full range (65535) as peak, no 8-bit rounding (luma)")
        page = render([tmp_path])
        assert "PSNR and SSIM on uint16 data, its full range (65535) as peak" in page
        assert "8-bit full-range luma" not in page

    def test_older_summaries_are_read_from_their_settings(self, tmp_path):
        folder = evaluation(tmp_path, "sei", 30)
        summary = json.loads((folder / "summary.json").read_text())
        summary["settings"].update(data_range=1.0, intensity={"offset": 0, "scale": 65535, "dtype": "uint16"})
        (folder / "summary.json").write_text(json.dumps(summary))
        assert "PSNR and SSIM on uint16 data, its full range (65535) as peak" in render([tmp_path])

    def test_different_scorings_are_each_named(self, tmp_path):
        evaluation(tmp_path, "eight", 30, scoring="8-bit full-range luma, as in the paper")
        evaluation(tmp_path, "sixteen", 31, scoring="uint16 data, its full range (65535) as peak")
        page = render([tmp_path])
        assert "<sup>1</sup> 8-bit full-range luma, as in the paper" in page
        assert "<sup>2</sup> uint16 data, its full range (65535) as peak" in page
        assert "sixteen<sup>2</sup>" in page

    def test_sei_test_records_its_scoring_and_the_report_says_it(self, tmp_path, capsys):
        from sei.io.images import write_image
        import torch

        folder = tmp_path / "dim16"
        generator = torch.Generator().manual_seed(0)
        write_image(folder / "im.png", 0.002 * torch.rand(1, 24, 24, generator=generator) + 0.3, bits=16)
        out = tmp_path / "eval16"
        assert main(["test", "--model-kind", "identity", "--kernel", "Box_R2", "--noise-level", "0", "--dataset",
                     str(folder), "--no-lpips", "--quiet", "--out-dir", str(out)]) == 0
        scoring = json.loads((out / "summary.json").read_text())["scoring"]
        assert scoring.startswith("uint16 data, its full range (65535) as peak") and scoring in capsys.readouterr().out
        page = render([out])
        assert f"PSNR and SSIM on {scoring}" in page and "8-bit full-range luma" not in page


class TestMetricsTable:
    @pytest.fixture
    def page(self, tmp_path) -> str:
        evaluation(tmp_path, "input", 22.0, ssim=0.60, lpips=0.40)  # the demo's label, no model kind
        evaluation(tmp_path, "tv", 25.0, ssim=0.75, lpips=0.20, kind="tv")
        evaluation(tmp_path, "sei", 28.0, ssim=0.72, lpips=0.30, kind="network")
        return render([tmp_path])

    def test_methods_by_psnr_and_the_input_last(self, page):
        table = metrics_table(page)
        labels = re.findall(r"<tr(?: class='input')?><td>([^<]+)</td>", table)
        assert labels == ["sei", "tv", "input"]
        assert "<tr class='input'><td>input</td>" in table

    def test_best_of_each_metric_in_bold(self, page):
        table = metrics_table(page)
        assert "<strong>28.00 ± 0.50</strong>" in table  # PSNR: sei
        assert "<strong>0.7500 ± 0.0100</strong>" in table  # SSIM: tv
        assert "<strong>0.2000 ± 0.0100</strong>" in table  # LPIPS (lower is better): tv
        assert table.count("<strong>") == 3

    def test_gain_over_the_input(self, page):
        table = metrics_table(page)
        assert "<th>gain over input (dB)</th>" in table
        assert "<td class='num'>+6.00</td>" in table and "<td class='num'>+3.00</td>" in table
        assert "(the input)" in table

    def test_no_input_no_gain_and_one_row_no_bold(self, tmp_path):
        evaluation(tmp_path, "sei", 28.0)
        table = metrics_table(render([tmp_path]))
        assert "<td class='num'>n/a</td>" in table and "<strong>" not in table


def test_the_measurement_is_shown_once(tmp_path, monkeypatch):
    folders = [evaluation(tmp_path, "blurry", 22.0, kind="identity", images=True),
               evaluation(tmp_path, "sei", 28.0, kind="network", images=True)]
    figures = []
    monkeypatch.setattr(sei.report, "_png", lambda figure: figures.append(figure) or "data:")
    crops_figure("a", find(folders).evaluations)
    titles = [axis.get_title() for axis in figures[0].axes if axis.get_visible()]
    assert titles == ["measurement = blurry", "sei", "reference", "|error| blurry", "|error| sei"]


class TestTrainingSection:
    def test_loss_first_machine_quantities_collapsed(self, tmp_path, monkeypatch):
        training_run(tmp_path, "run", seconds=725)
        figures = []
        monkeypatch.setattr(sei.report, "_png", lambda figure: figures.append(figure) or "data:")
        page = render([tmp_path])
        details = page.index("<details>")
        assert page.index("train/loss") < page.index("train/sure") < details
        assert "<td class='num'><strong>0.4</strong></td>" in page  # the loss, bold
        for key in ("train/data_wait_fraction", "train/samples_per_s"):
            assert page.index(key) > details and page.count(key) == 1
        plotted = {axis.get_title() for axis in figures[0].axes if axis.get_visible()}
        assert plotted == {"train/loss", "train/sure", "train/lr"}

    def test_training_time_from_the_run_folder(self, tmp_path):
        training_run(tmp_path, "done", seconds=725)
        training_run(tmp_path, "killed")
        page = render([tmp_path])
        assert "training time: 12 min 05 s for 1000 steps, 0.725 s per step" in page
        assert "training time: not recorded (train_summary.json is written when training finishes)" in page

    def test_durations(self):
        assert duration_text(42) == "42 s" and duration_text(3 * 3600 + 60) == "3 h 01 min"


class TestRestoreOutputs:
    @staticmethod
    def images(folder: Path, names: list[str], dtype=np.uint8, offset: int = 0) -> None:
        rng = np.random.default_rng(0)
        for name in names:
            high = 255 if dtype == np.uint8 else 4000
            pixels = rng.integers(0, high - offset, (20, 24)).astype(dtype) + dtype(offset)
            write_image_file(folder / name, ImageFile([pixels]))

    def test_outputs_beside_their_recorded_inputs(self, tmp_path):
        self.images(tmp_path / "blurry", ["a.png", "b.png"])
        self.images(tmp_path / "restored", ["a.png", "b.png"], offset=3)
        record = {"source": str(tmp_path / "blurry"),
                  "files": {"a.png": str(tmp_path / "blurry" / "a.png"), "b.png": "../blurry/b.png"},
                  "model_kind": "tv"}
        (tmp_path / "restored" / RESTORE_RECORD).write_text(json.dumps(record))
        page = render([tmp_path / "restored"])
        assert "<h2>Restored: restored</h2>" in page and f"restored from {tmp_path / 'blurry'}" in page
        assert "<th>input</th>" in page and page.count("alt='input of ") == 2 and page.count(" restored' src=") == 2
        assert "1 restore output folder(s)" in page

    def test_outputs_alone_when_only_intensity_is_recorded(self, tmp_path):
        self.images(tmp_path / "in", ["cell.png"], dtype=np.uint16, offset=100)
        assert main(["restore", str(tmp_path / "in"), str(tmp_path / "out"), "--model-kind", "identity", "--kernel",
                     "Box_R2", "--noise-level", "0", "--quiet"]) == 0
        assert (tmp_path / "out" / "intensity.json").is_file()
        (tmp_path / "out" / "restore.json").unlink()  # a folder restored before sei recorded its inputs
        page = render([tmp_path / "out"])
        assert "outputs alone" in page and "<th>input</th>" not in page
        assert page.count("alt='cell.png restored'") == 1 and "contrast stretch" in page

    def test_a_plain_image_folder_is_not_a_restore_output(self, tmp_path):
        self.images(tmp_path / "photos", ["a.png"])
        with pytest.raises(sei.core.errors.ConfigError, match="restored images"):
            render([tmp_path / "photos"])
