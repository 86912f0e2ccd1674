"""Blur kernels: names, sizes, normalisation, files, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sei.core.errors import KernelError, UnknownNameError
from sei.physics.kernels import (
    PAPER_KERNELS, canonical_kernel_name, kernel_from_file, kernel_from_name, load_kernel, validate_kernel,
)

EXPECTED_SIZES = {"Gaussian_R1": 7, "Gaussian_R2": 13, "Gaussian_R3": 19, "Box_R2": 5, "Box_R3": 7, "Box_R4": 9}


class TestNamedKernels:
    @pytest.mark.parametrize("name", PAPER_KERNELS)
    def test_size_and_sum(self, name):
        kernel = kernel_from_name(name)
        size = EXPECTED_SIZES[name]
        assert kernel.shape == (size, size)
        assert kernel.dtype == torch.float32
        assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert (kernel >= 0).all()

    @pytest.mark.parametrize("std", [1, 2, 3])
    def test_gaussian_profile(self, std):
        kernel = kernel_from_name(f"Gaussian_R{std}").double()
        centre = 3 * std
        assert kernel.argmax().item() == centre * (6 * std + 1) + centre  # peak at the centre
        assert torch.allclose(kernel, kernel.T) and torch.allclose(kernel, kernel.flip(0))
        # the variance of the (truncated) profile is close to std^2
        coords = torch.arange(-centre, centre + 1, dtype=torch.float64)
        variance = (kernel.sum(1) * coords**2).sum().item()
        assert variance == pytest.approx(std**2, rel=0.03)

    def test_box_is_uniform(self):
        kernel = kernel_from_name("Box_R3")
        assert torch.allclose(kernel, torch.full((7, 7), 1 / 49))

    def test_names_are_case_insensitive(self):
        assert torch.equal(kernel_from_name("gaussian_r2"), kernel_from_name("Gaussian_R2"))
        assert canonical_kernel_name("box_r4") == "Box_R4"

    def test_other_sizes(self):
        assert kernel_from_name("Gaussian_R4").shape == (25, 25)
        assert kernel_from_name("Box_R1").shape == (3, 3)


class TestKernelErrors:
    @pytest.mark.parametrize("name", ["Gaussian", "Motion_R2", "Gaussian_R", "Box_R2.5", "", "Gaussian_R0"])
    def test_unknown_name_lists_valid_names(self, name):
        with pytest.raises((UnknownNameError, KernelError)) as info:
            kernel_from_name(name)
        if isinstance(info.value, UnknownNameError):
            for valid in PAPER_KERNELS:
                assert valid in str(info.value)

    @pytest.mark.parametrize(
        "bad, message",
        [
            (torch.ones(3, 3, 3), "2-D"),
            (torch.zeros(5, 5), "sums to 0"),
            (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "NaN"),
            (torch.tensor([[1.0, -0.5], [0.2, 1.0]]), "negative"),
            (torch.ones(0, 3), "empty"),
        ],
    )
    def test_malformed_tensor(self, bad, message):
        with pytest.raises(KernelError, match=message):
            validate_kernel(bad)

    def test_missing_file(self, tmp_path):
        with pytest.raises(KernelError, match="not found"):
            kernel_from_file(tmp_path / "nothing.npy")

    def test_unknown_suffix(self, tmp_path):
        path = tmp_path / "kernel.txt"
        path.write_text("1 2 3")
        with pytest.raises(KernelError, match="unknown kernel file type"):
            kernel_from_file(path)

    def test_corrupted_file(self, tmp_path):
        path = tmp_path / "kernel.pt"
        path.write_bytes(b"not a torch file")
        with pytest.raises(KernelError, match="cannot be read"):
            kernel_from_file(path)

    def test_colour_image_is_refused(self, tmp_path):
        from PIL import Image

        path = tmp_path / "kernel.png"
        Image.fromarray(np.full((5, 5, 3), 200, dtype=np.uint8)).save(path)
        with pytest.raises(KernelError, match="grayscale"):
            kernel_from_file(path)


class TestKernelFiles:
    def test_npy_is_normalised(self, tmp_path):
        raw = np.random.default_rng(0).random((9, 7))
        np.save(tmp_path / "k.npy", raw)
        kernel = kernel_from_file(tmp_path / "k.npy")
        assert kernel.shape == (9, 7)
        assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
        assert np.allclose(kernel.numpy(), raw / raw.sum(), atol=1e-7)

    def test_pt_tensor_and_batched_shape(self, tmp_path):
        raw = torch.rand(1, 1, 5, 5)
        torch.save(raw, tmp_path / "k.pt")
        kernel = load_kernel(str(tmp_path / "k.pt"))
        assert kernel.shape == (5, 5)
        assert torch.allclose(kernel, raw[0, 0] / raw.sum())

    def test_grayscale_16bit_png(self, tmp_path):
        from PIL import Image

        raw = (np.outer(np.hanning(11), np.hanning(11)) * 65535).astype(np.uint16)
        Image.fromarray(raw).save(tmp_path / "k.png")
        kernel = kernel_from_file(tmp_path / "k.png")
        assert kernel.shape == (11, 11)
        assert np.allclose(kernel.numpy(), raw / raw.sum(), atol=1e-6)

    def test_load_kernel_accepts_names_paths_tensors(self, tmp_path):
        np.save(tmp_path / "k.npy", np.ones((3, 3)))
        assert load_kernel("Box_R1").shape == (3, 3)
        assert torch.allclose(load_kernel(tmp_path / "k.npy"), load_kernel("Box_R1"))
        assert torch.allclose(load_kernel(torch.ones(3, 3)), load_kernel("Box_R1"))
