"""The report and the training logs tell the truth: labelled tasks, escaped values, unfinished runs said,
readable figures, the logged data-wait fraction, and a terminal without ``v_num`` or advertising."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sei.report
from sei.report import crops_figure, discover, render

PHYSICS = {
    "deblur": {"task": "deblurring", "kernel": "Gaussian_R2", "sr_factor": None, "noise_level": 5.0},
    "sr": {"task": "sr", "kernel": None, "sr_factor": 2, "noise_level": 5.0},
}


def evaluation(root: Path, name: str, physics: dict, dataset: str = "sample", n: object = 1,
               images: bool = False) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("name,psnr\na,30\n")
    summary = {"psnr": 30.0, "psnr_std": 0.0, "n": n,
               "settings": {"label": name, "dataset": dataset, "split": "val", "physics": physics}}
    (folder / "summary.json").write_text(json.dumps(summary))
    if images:
        rng = np.random.default_rng(0)
        (folder / "images").mkdir()
        reference = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        for kind, image in (("reference", reference), ("input", reference),
                            ("estimate", np.clip(reference.astype(int) + 9, 0, 255).astype(np.uint8))):
            Image.fromarray(image).save(folder / "images" / f"a_{kind}.png")
    return folder


def training_run(root: Path, name: str, finished: bool) -> Path:
    folder = root / name
    (folder / "logs" / "csv").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "name: %s\nphysics: {task: deblurring, kernel: Box_R2, noise_level: 5}\ndata: {dataset: sample}\n"
        "model: {backbone: unet-tiny}\nloss: {method: sei}\ntrain: {steps: 1000, lr: 0.001}\n" % name)
    with open(folder / "logs" / "csv" / "metrics.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "step", "train/loss"])
        writer.writerows([[0, 9, 0.5], [0, 19, 0.4]])
    if finished:
        (folder / "weights.pt").write_bytes(b"w")
        (folder / "train_summary.json").write_text(json.dumps({"steps": 1000}))
    return folder


def test_tasks_are_labelled_and_values_escaped(tmp_path):
    evaluation(tmp_path, "deblur", PHYSICS["deblur"], n="<script>alert(1)</script>")
    evaluation(tmp_path, "sr", PHYSICS["sr"], dataset="sharp/")
    page = render([tmp_path])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<th>task</th>" in page
    assert "Gaussian_R2 deblurring, noise 5" in page and "x2 super-resolution, noise 5" in page
    assert "sharp//val" not in page and "<td>sharp</td>" in page


def test_unfinished_runs_are_said(tmp_path):
    training_run(tmp_path, "done", finished=True)
    training_run(tmp_path, "killed", finished=False)
    (training_run(tmp_path, "early", finished=False) / "logs" / "csv" / "metrics.csv").unlink()
    runs, _ = discover([tmp_path])
    assert {run.label: run.finished for run in runs} == {"done": True, "killed": False, "early": False}
    page = render([tmp_path])
    assert page.count("unfinished: stopped after step 19") == 1
    assert page.count("unfinished: stopped before its first logged step") == 1


def test_error_titles_clear_the_crops_above(tmp_path, monkeypatch):
    folders = [evaluation(tmp_path, name, PHYSICS["deblur"], images=True) for name in ("one", "two")]
    figures = []
    monkeypatch.setattr(sei.report, "_png", lambda figure: figures.append(figure) or "data:")
    crops_figure("a", discover(folders)[1])
    figure = figures[0]
    renderer = figure.canvas.get_renderer() if hasattr(figure.canvas, "get_renderer") else figure._get_renderer()
    figure.draw(renderer)
    axes = figure.axes
    top = [axis for axis in axes if axis.get_visible() and axis.get_subplotspec().rowspan.start == 0]
    bottom = [axis for axis in axes if axis.get_visible() and axis.get_subplotspec().rowspan.start == 1]
    assert bottom and all(axis.get_title().startswith("|error|") for axis in bottom)
    for axis in bottom:
        title = axis.title.get_window_extent(renderer)
        for above in top:
            image = above.get_window_extent(renderer)
            assert not title.overlaps(image), f"{axis.get_title()!r} overlaps the crop {above.get_title()!r}"


def test_data_wait_fraction_is_logged_with_one_step_per_epoch(tmp_path, capfd):
    from sei.cli import main

    run = tmp_path / "run"
    assert main(["train", "--dataset", "sample", "--kernel", "Gaussian_R1", "--model", "unet-tiny", "--batch-size",
                 "2", "--crop-size", "24", "--samples-per-epoch", "2", "--steps", "3", "--out-dir", str(run)]) == 0
    terminal = capfd.readouterr()
    with open(run / "logs" / "csv" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert any(row.get("train/data_wait_fraction") not in (None, "") for row in rows)
    assert "v_num" not in terminal.err + terminal.out and "Tip:" not in terminal.err + terminal.out
    assert "train/loss" in terminal.err + terminal.out  # the progress bar itself is still there


@pytest.mark.parametrize("physics, expected", [
    ({"task": "sr", "sr_factor": 4, "kernel": "/home/me/psf.npy", "noise_level": 0}, "x4 super-resolution (psf.npy), noise 0"),
    ({"task": "deblurring", "kernel": "Box_R3", "noise_level": 2.5}, "Box_R3 deblurring, noise 2.5"),
])
def test_describe_task(physics, expected):
    assert sei.report.describe_task(physics) == expected
