"""``sei score``: the user's own restorations against their own references, with a stated data range."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from sei.cli import main
from sei.core.errors import ConfigError, ImageError, OutputExistsError
from sei.inference.scoring import (
    SCORES_CSV, SCORES_JSON, default_out_dir, pair_files, peak_of, run_score, score_arrays, score_file,
)
from sei.io.images import ImageFile, write_image_file


def reference_ramp(height: int = 40, width: int = 50, low: int = 0, high: int = 1000) -> np.ndarray:
    """A uint16 image holding ``low`` and ``high`` (its own range is ``high - low``), varied in between."""
    rng = np.random.default_rng(0)
    image = rng.integers(low, high + 1, (height, width)).astype(np.uint16)
    image[0, 0], image[-1, -1] = low, high
    return image


def save(path: Path, *pages: np.ndarray) -> Path:
    return write_image_file(path, ImageFile(list(pages)))


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """estimates/ and references/: ``a`` = reference + 10 (uint16, 0..1000), and files without a partner."""
    estimates, references = tmp_path / "estimates", tmp_path / "references"
    reference = reference_ramp()
    save(references / "a.png", reference)
    save(estimates / "a.png", reference + 10)
    save(references / "only_reference.png", reference)
    save(estimates / "only_estimate.png", reference)
    return estimates, references


class TestMeasurement:
    def test_constant_offset_gives_the_known_psnr(self, folders, tmp_path):
        estimates, references = folders
        with pytest.warns(UserWarning, match="only_estimate.png.*only_reference.png"):
            result = run_score(estimates, references, tmp_path / "out")
        (row,) = result.rows
        assert row.peak == 1000 and row.dtype == "uint16"
        assert row.psnr == pytest.approx(20 * math.log10(1000 / 10), abs=1e-4)  # 40 dB
        assert 0 < row.ssim < 1
        assert result.summary["n"] == 1 and result.summary["psnr"] == pytest.approx(40, abs=1e-4)

    def test_data_range_modes(self, tmp_path):
        reference = reference_ramp(low=100, high=3000)
        save(tmp_path / "ref.png", reference)
        save(tmp_path / "est.png", reference + 10)
        own = score_file("x", tmp_path / "est.png", tmp_path / "ref.png")
        assert own.peak == 2900 and own.psnr == pytest.approx(20 * math.log10(2900 / 10), abs=1e-4)
        full = score_file("x", tmp_path / "est.png", tmp_path / "ref.png", "dtype")
        assert full.peak == 65535 and full.psnr == pytest.approx(20 * math.log10(65535 / 10), abs=1e-4)
        given = score_file("x", tmp_path / "est.png", tmp_path / "ref.png", 4095)
        assert given.peak == 4095 and given.psnr == pytest.approx(20 * math.log10(4095 / 10), abs=1e-4)
        assert peak_of("dtype", np.zeros(3), "uint8") == 255

    def test_float_data_have_no_dtype_range(self, tmp_path):
        reference = np.linspace(-1, 5, 40 * 40, dtype=np.float32).reshape(40, 40)
        save(tmp_path / "ref.tif", reference)
        save(tmp_path / "est.tif", reference + np.float32(0.06))
        row = score_file("x", tmp_path / "est.tif", tmp_path / "ref.tif", "dtype")
        assert row.error is not None and "float32" in row.error and "no dtype range" in row.error
        row = score_file("x", tmp_path / "est.tif", tmp_path / "ref.tif")  # own range: 6 units, error 0.06
        assert row.error is None and row.psnr == pytest.approx(40, abs=1e-3)

    def test_border_is_excluded_as_predicted(self, tmp_path):
        reference = reference_ramp(40, 40)
        estimate = reference.copy()
        estimate[4:-4, 4:-4] += 10  # inside the border: off by 10; the border itself exact
        save(tmp_path / "ref.png", reference)
        save(tmp_path / "est.png", estimate)
        whole = score_file("x", tmp_path / "est.png", tmp_path / "ref.png", 1000)
        inner = (32 * 32) / (40 * 40)
        assert whole.psnr == pytest.approx(10 * math.log10(1000**2 / (100 * inner)), abs=1e-4)
        cut = score_file("x", tmp_path / "est.png", tmp_path / "ref.png", 1000, border=4)
        assert cut.psnr == pytest.approx(40, abs=1e-4) and cut.shape == "32x32"
        too_much = score_file("x", tmp_path / "est.png", tmp_path / "ref.png", 1000, border=20)
        assert "leaves nothing of 40x40" in too_much.error

    def test_rgb_against_rgb_in_its_own_units(self, tmp_path):
        rng = np.random.default_rng(1)
        reference = rng.integers(20, 200, (32, 32, 3)).astype(np.uint8)
        Image.fromarray(reference).save(tmp_path / "ref.png")
        Image.fromarray(reference + 5).save(tmp_path / "est.png")  # luma off by 5 everywhere
        row = score_file("x", tmp_path / "est.png", tmp_path / "ref.png", "dtype")
        assert row.shape == "32x32 RGB" and row.psnr == pytest.approx(20 * math.log10(255 / 5), abs=1e-4)

    def test_stacks_score_all_pages(self, tmp_path):
        reference = [reference_ramp(24, 24), reference_ramp(24, 24)]
        save(tmp_path / "ref.tif", *reference)
        save(tmp_path / "est.tif", reference[0] + 10, reference[1] + 30)  # page MSEs 100 and 900
        row = score_file("x", tmp_path / "est.tif", tmp_path / "ref.tif", 1000)
        assert row.shape == "2 pages of 24x24"
        assert row.psnr == pytest.approx(10 * math.log10(1000**2 / 500), abs=1e-4)  # over all pages together

    def test_score_arrays_of_identical_stacks(self):
        stack = np.random.default_rng(0).random((2, 16, 16, 1))
        psnr, ssim = score_arrays(stack, stack.copy(), 1.0)
        assert math.isinf(psnr) and ssim == pytest.approx(1.0)


class TestPairing:
    def test_pairing_by_stem(self, tmp_path):
        save(tmp_path / "e" / "cell.tif", reference_ramp())
        save(tmp_path / "r" / "cell.png", reference_ramp())
        save(tmp_path / "r" / "other.png", reference_ramp())
        pairs, only_estimates, only_references = pair_files(tmp_path / "e", tmp_path / "r")
        assert [(name, e.name, r.name) for name, e, r in pairs] == [("cell", "cell.tif", "cell.png")]
        assert only_estimates == [] and [p.name for p in only_references] == ["other.png"]
        # one estimate file against the references folder; two files whatever their names
        assert pair_files(tmp_path / "e" / "cell.tif", tmp_path / "r")[0][0][2].name == "cell.png"
        assert len(pair_files(tmp_path / "e" / "cell.tif", tmp_path / "r" / "other.png")[0]) == 1

    def test_no_pair_at_all_is_a_clear_error(self, tmp_path):
        save(tmp_path / "e" / "a.png", reference_ramp())
        save(tmp_path / "r" / "b.png", reference_ramp())
        with pytest.raises(ImageError, match="no estimate has a reference of the same name.*a.png.*b.png"):
            pair_files(tmp_path / "e", tmp_path / "r")

    def test_a_folder_against_one_file_is_refused(self, tmp_path):
        save(tmp_path / "e" / "a.png", reference_ramp())
        save(tmp_path / "r.png", reference_ramp())
        with pytest.raises(ConfigError, match="is a folder"):
            pair_files(tmp_path / "e", tmp_path / "r.png")

    def test_two_files_of_one_name_are_refused(self, tmp_path):
        save(tmp_path / "e" / "a.png", reference_ramp())
        save(tmp_path / "e" / "a.tif", reference_ramp())
        save(tmp_path / "r" / "a.png", reference_ramp())
        with pytest.raises(ImageError, match="2 files named a"):
            pair_files(tmp_path / "e", tmp_path / "r")

    def test_shape_mismatch_fails_that_file_only(self, folders, tmp_path):
        estimates, references = folders
        save(estimates / "b.png", reference_ramp(40, 50))
        save(references / "b.png", reference_ramp(40, 51))
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(estimates / "c.png")
        save(references / "c.png", reference_ramp(40, 50))
        with pytest.warns(UserWarning):
            result = run_score(estimates, references, tmp_path / "out")
        rows = {row.name: row for row in result.rows}
        assert rows["a"].error is None
        assert rows["b"].error == "shapes differ: estimate 40x50, reference 40x51"
        assert "estimate 40x50 RGB, reference 40x50" in rows["c"].error
        assert result.summary["n"] == 1 and result.summary["failed"] == 2


class TestOutputs:
    def test_files_and_refusal_to_overwrite(self, folders, tmp_path):
        estimates, references = folders
        out = tmp_path / "out"
        with pytest.warns(UserWarning):
            run_score(estimates, references, out, border=2)
        record = json.loads((out / SCORES_JSON).read_text())
        assert record["kind"] == "sei score" and record["border"] == 2 and record["data_range"] == "reference"
        assert "each reference's own range" in record["rule"] and "2-pixel border excluded" in record["rule"]
        assert record["rows"][0]["name"] == "a" and record["summary"]["n"] == 1
        with open(out / SCORES_CSV, newline="") as file:
            assert [row["name"] for row in csv.DictReader(file)] == ["a"]
        before = (out / SCORES_JSON).read_bytes()
        with pytest.raises(OutputExistsError):  # refused before anything is read or said
            run_score(estimates, references, out, data_range="dtype")
        assert (out / SCORES_JSON).read_bytes() == before
        with pytest.warns(UserWarning):
            run_score(estimates, references, out, data_range="dtype", overwrite=True)
        assert json.loads((out / SCORES_JSON).read_text())["data_range"] == "dtype"

    def test_default_folder_is_beside_the_estimates(self, tmp_path):
        assert default_out_dir(tmp_path / "restored") == tmp_path / "restored-scores"
        assert default_out_dir(tmp_path / "cell.tif") == tmp_path / "cell-scores"

    def test_identical_files_are_recorded_as_valid_json(self, tmp_path):
        save(tmp_path / "e" / "a.png", reference_ramp())
        save(tmp_path / "r" / "a.png", reference_ramp())
        result = run_score(tmp_path / "e", tmp_path / "r", tmp_path / "out")
        assert math.isinf(result.rows[0].psnr) and result.summary["identical"] == 1 and "psnr" not in result.summary
        text = (tmp_path / "out" / SCORES_JSON).read_text()
        assert "Infinity" not in text and json.loads(text)["rows"][0]["note"] == "identical to the reference"


class TestCommand:
    def test_ok_prints_the_table_and_the_stated_range(self, folders, tmp_path, capsys):
        estimates, references = folders
        assert main(["score", str(estimates), str(references), "--border", "4", "--quiet"]) == 0
        out, err = capsys.readouterr()
        assert ("PSNR and SSIM with each reference's own range (the max - min of its scored pixels) as peak; "
                "4-pixel border excluded") in out
        assert "40.00" in out and "mean ± std over 1 file(s)" in out
        assert "warning: files with no partner" in err and "only_estimate.png" in err and "only_reference.png" in err
        assert (tmp_path / "estimates-scores" / SCORES_JSON).is_file()
        # again: refused, one line, exit 2
        assert main(["score", str(estimates), str(references), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("sei score: error:") and "--overwrite" in err[-1]
        assert main(["score", str(estimates), str(references), "--quiet", "--overwrite"]) == 0

    def test_a_failed_file_gives_exit_status_1(self, folders, tmp_path, capsys):
        estimates, references = folders
        save(estimates / "b.png", reference_ramp(40, 50))
        save(references / "b.png", reference_ramp(40, 51))
        assert main(["score", str(estimates), str(references), "--out", str(tmp_path / "s"), "--quiet"]) == 1
        assert "shapes differ" in capsys.readouterr().err

    @pytest.mark.parametrize("arguments, message", [
        (["e", "r"], "no estimate has a reference of the same name"),
        (["missing", "r"], "estimates not found"),
        (["e", "r", "--data-range", "dtype-ish"], "invalid data range"),
        (["e", "r", "--data-range", "-3"], "--data-range: expected reference, dtype or a number > 0"),
        (["e", "r", "--border", "-1"], "--border"),
    ])
    def test_bad_input_is_one_line_and_exit_2(self, tmp_path, monkeypatch, capsys, arguments, message):
        monkeypatch.chdir(tmp_path)
        save(tmp_path / "e" / "a.png", reference_ramp())
        save(tmp_path / "r" / "b.png", reference_ramp())
        try:
            code = main(["score", *arguments, "--quiet"])
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("sei score: error:") and message in err[0]

    def test_float_references_with_dtype_range_exit_2(self, tmp_path, capsys):
        reference = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
        tifffile.imwrite(tmp_path / "r.tif", reference)
        tifffile.imwrite(tmp_path / "e.tif", reference)
        assert main(["score", str(tmp_path / "e.tif"), str(tmp_path / "r.tif"), "--data-range", "dtype",
                     "--quiet"]) == 2
        assert "no dtype range" in capsys.readouterr().err

    def test_report_shows_the_scores(self, folders, tmp_path):
        estimates, references = folders
        out = tmp_path / "scores"
        assert main(["score", str(estimates), str(references), "--out", str(out), "--border", "4", "--quiet"]) == 0
        for given in (out, out / SCORES_JSON):
            page = tmp_path / "report.html"
            assert main(["report", str(given), "--out", str(page)]) == 0
            html = page.read_text()
            assert "Scores: estimates against references" in html
            assert "4-pixel border excluded" in html and "each reference&#x27;s own range" in html
            assert "<td>a</td><td class='num'>40.00</td>" in html and "1 score file(s)" in html
            assert "only_estimate.png" in html  # named as not scored


def test_the_command_prints_its_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sei score") and "--data-range" in out and "--max-pixels" in out
