"""Tiled inference: exact for local operations, seamless for networks, bounded in memory."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError
from sei.models import build_backbone
from sei.inference.reconstructors import NetworkReconstructor
from sei.inference.tiling import blend_window, planes_by_chunks, tile_layout, tiled_apply


@pytest.mark.parametrize("tile, overlap, multiple", [(256, 32, 1), (512, 32, 8), (64, 32, 4), (48, 12, 16)])
def test_fewest_equal_tiles_cover_the_image_with_the_overlap(tile, overlap, multiple):
    for length in range(1, 1300, 7):
        size, starts = tile_layout(length, tile, overlap, multiple)
        assert starts[0] == 0 and starts[-1] + size == length and size <= min(tile, length)
        assert all(end - start <= size - overlap for start, end in zip(starts, starts[1:]))
        if len(starts) > 1:  # tiles on the grid: all starts but the last, and the size
            assert size % multiple == 0 and all(start % multiple == 0 for start in starts[:-1])
        fewer = len(starts) - 1  # one tile fewer, even at full size, would leave a gap
        assert multiple > 1 or fewer == 0 or fewer * tile - (fewer - 1) * overlap < length


def test_tiles_share_the_length_evenly():
    # fixed 512 px tiles would compute 1536 px for 1024; three equal ones, on the window multiple, 1104
    assert tile_layout(1024, 512, 32, 8) == (368, [0, 336, 656])
    assert tile_layout(600, 512, 32) == (316, [0, 284])
    assert tile_layout(1000, 40, 32, 16) == (40, list(range(0, 961, 8)))  # no step of 16 px fits: not aligned
    assert tile_layout(100, 256, 32) == (100, [0])


def test_window_is_positive_and_flat_inside():
    window = blend_window(64, 80, 16)
    assert window.min() > 0 and window[16:48, 16:64].eq(1).all()
    assert torch.allclose(window, window.flip(0)) and torch.allclose(window, window.flip(1))


@pytest.mark.parametrize("upscale", [1, 3])
def test_pointwise_operation_is_reproduced_exactly(upscale):
    y = torch.rand(1, 3, 157, 203)

    def restore(t):
        return torch.nn.functional.interpolate(t.square(), scale_factor=upscale, mode="nearest")

    assert torch.allclose(tiled_apply(restore, y, tile=48, overlap=12, upscale=upscale), restore(y), atol=1e-6)


def test_a_volume_is_tiled_laterally_with_all_its_planes():
    y = torch.rand(1, 1, 7, 90, 110)
    seen = []

    def restore(t):
        seen.append(tuple(t.shape))
        return t.square()

    assert torch.allclose(tiled_apply(restore, y, tile=48, overlap=12), y.square(), atol=1e-6)
    assert len(seen) > 1 and all(shape[:3] == (1, 1, 7) and max(shape[3:]) <= 48 for shape in seen)


def test_a_volume_super_resolved_along_z_is_tiled_without_scaling_its_planes():
    y = torch.rand(1, 1, 7, 90, 110)
    repeat = lambda t: t.repeat_interleave(3, dim=2).square()  # noqa: E731 - three planes per plane, as axial SR
    assert torch.allclose(tiled_apply(repeat, y, tile=48, overlap=12, upscale=3), repeat(y), atol=1e-6)


def test_network_output_has_no_seams():
    # a residual restorer with a modest correction, like a trained one
    torch.manual_seed(0)
    model = build_backbone("unet-tiny").eval()
    model.tail.reset_parameters()
    with torch.no_grad():
        model.tail.weight.mul_(0.1)
    y = torch.rand(1, 3, 130, 170)
    with torch.no_grad():
        whole = model(y)
        tiled = tiled_apply(model, y, tile=64, overlap=32, multiple=model.size_multiple)
    correction = (whole - y).abs().max()
    # inside the image (the image border is padded differently whole and tiled), the blend of tiles follows
    # the whole-image output closely: no seam stands out
    inside = (tiled - whole).abs()[..., 8:-8, 8:-8]
    assert inside.max() < 0.05 * correction
    assert inside.mean() < 0.01 * correction


def test_reconstructor_tiles_only_large_images():
    model = build_backbone("unet-tiny", upscale=2)
    calls = []

    def spy(module, inputs, output):
        calls.append(tuple(inputs[0].shape[-2:]))

    model.register_forward_hook(spy)
    reconstructor = NetworkReconstructor(model, tile=40, overlap=8)
    assert reconstructor(torch.rand(1, 3, 30, 30)).shape == (1, 3, 60, 60) and calls == [(30, 30)]
    calls.clear()
    assert reconstructor(torch.rand(1, 3, 90, 70)).shape == (1, 3, 180, 140)
    assert all(h <= 40 and w <= 40 for h, w in calls) and len(calls) > 1
    # tiles on the U-Net's multiple (4 for two levels), so that it pads none of them
    assert all(h % model.size_multiple == 0 and w % model.size_multiple == 0 for h, w in calls)


@pytest.mark.parametrize("name, upscale, multiple", [("unet-small", 1, 4), ("unet-small", 3, 4), ("swinir-small", 2, 8),
                                                     ("unrolled-tiny", 1, 4), ("unrolled-tiny", 2, 2),
                                                     ("unrolled-tiny", 3, 4)])
def test_size_multiple_is_what_the_network_computes_unpadded(name, upscale, multiple):
    from sei.physics.spec import PhysicsSpec

    task = "deblurring" if upscale == 1 else "sr"
    physics = PhysicsSpec(task=task, kernel="Gaussian_R2", sr_factor=upscale).build()
    assert build_backbone(name, upscale=upscale, physics=physics).size_multiple == multiple


def test_bad_tile_settings():
    with pytest.raises(ConfigError):
        tiled_apply(lambda t: t, torch.rand(1, 1, 10, 10), tile=8, overlap=8)


class TestPlanesByChunks:
    """A volume restored a chunk of planes at a time, the planes coming out in order as they are done."""

    @staticmethod
    def volume(depth: int = 23) -> torch.Tensor:
        return torch.rand(1, 1, depth, 6, 5, generator=torch.Generator().manual_seed(0))

    @staticmethod
    def run(restore, volume, chunk, overlap, log=None):
        def read(start, stop):
            if log is not None:
                log.append((start, stop))
            return volume[:, :, start:stop]

        return torch.stack(list(planes_by_chunks(restore, read, volume.shape[2], chunk, overlap)), dim=2)

    @pytest.mark.parametrize("chunk, overlap", [(8, 3), (5, 1), (23, 4), (40, 4), (2, 1)])
    def test_a_planewise_operation_is_reproduced_exactly(self, chunk, overlap):
        volume, log = self.volume(), []
        chunked = self.run(lambda v: 2 * v + 1, volume, chunk, overlap, log)
        assert torch.allclose(chunked, 2 * volume + 1, atol=1e-6)
        assert max(stop - start for start, stop in log) <= chunk and log[0][0] == 0 and log[-1][1] == 23

    @pytest.mark.parametrize("chunk, overlap", [(8, 3), (5, 1)])
    def test_chunks_super_resolved_along_z_come_out_as_the_whole(self, chunk, overlap):
        volume = self.volume()
        planes = planes_by_chunks(lambda v: v.repeat_interleave(2, dim=2) + 1, lambda a, b: volume[:, :, a:b],
                                  volume.shape[2], chunk, overlap, upscale=2)
        assert torch.allclose(torch.stack(list(planes), dim=2), volume.repeat_interleave(2, dim=2) + 1, atol=1e-6)

    def test_an_operation_along_z_is_blended_across_chunks(self):
        def mean_of_three(v):  # each plane with its neighbours; the ends repeat themselves
            padded = torch.nn.functional.pad(v, (0, 0, 0, 0, 1, 1), mode="replicate")
            return torch.nn.functional.avg_pool3d(padded, (3, 1, 1), stride=1)

        volume = self.volume(40)
        whole = mean_of_three(volume)
        chunked = self.run(mean_of_three, volume, 12, 4)
        wrong = self.run(mean_of_three, volume, 12, 0)  # butted chunks: every chunk's ends are wrong
        assert (chunked - whole).abs().max() < 0.25 * (wrong - whole).abs().max()
        assert (chunked - whole).abs().mean() < 0.01

    def test_planes_come_out_as_soon_as_no_later_chunk_reaches_them(self):
        volume, log = self.volume(30), []

        def read(start, stop):
            log.append(start)
            return volume[:, :, start:stop]

        planes = planes_by_chunks(lambda v: v, read, 30, 10, 2)
        next(planes)
        assert log == [0]  # the second chunk starts at plane 7: planes 0 to 6 are done before it is read
        assert len(list(planes)) == 29

    def test_bad_chunks(self):
        with pytest.raises(ConfigError, match="chunk > overlap"):
            next(planes_by_chunks(lambda v: v, lambda a, b: None, 10, 4, 4))
