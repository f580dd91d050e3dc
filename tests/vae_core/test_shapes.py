"""Tests for the procedural dSprites-like shapes: determinism, factors, geometry."""

from __future__ import annotations

import math

import pytest
import torch

from vae_core.shapes import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    SHAPE_NAMES,
    factor_indices,
    factor_values,
    generate_shapes,
    indices_to_factors,
    render_shapes,
)

SQUARE, ELLIPSE, HEART = range(3)


def _center_of_mass(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, S, S) -> (row, col) centre of mass of the lit pixels, each (N,)."""
    mass = images[:, 0].float()  # (N, S, S)
    S = mass.shape[-1]
    coords = torch.arange(S, dtype=torch.float32)
    total = mass.sum(dim=(1, 2))
    rows = (mass.sum(dim=2) * coords).sum(dim=1) / total
    cols = (mass.sum(dim=1) * coords).sum(dim=1) / total
    return rows, cols


def test_generate_shapes_returns_binary_uint8_images_and_factor_tables() -> None:
    images, factors, factor_idx = generate_shapes(50, image_size=32, seed=3)
    assert images.shape == (50, 1, 32, 32) and images.dtype == torch.uint8
    assert set(images.unique().tolist()) == {0, 255}
    assert factors.shape == (50, 5) and factors.dtype == torch.float32
    assert factor_idx.shape == (50, 5) and factor_idx.dtype == torch.int64
    assert (factor_idx >= 0).all()
    assert (factor_idx < torch.tensor(FACTOR_SIZES)).all()
    assert (images.flatten(1).amax(dim=1) == 255).all()  # every image shows a shape


def test_generate_shapes_is_deterministic_in_the_seed() -> None:
    a = generate_shapes(64, image_size=28, seed=7)
    b = generate_shapes(64, image_size=28, seed=7)
    c = generate_shapes(64, image_size=28, seed=8)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[2], c[2])
    assert not torch.equal(a[0], c[0])


def test_factor_values_are_the_grid_values_at_the_factor_indices() -> None:
    _, factors, factor_idx = generate_shapes(200, image_size=28, seed=1)
    grids = factor_values()
    for k, grid in enumerate(grids):
        assert len(grid) == FACTOR_SIZES[k]
        assert torch.equal(factors[:, k], grid[factor_idx[:, k]])
    assert torch.equal(indices_to_factors(factor_idx), factors)
    assert grids[1][0] == 0.5 and grids[1][-1] == 1.0
    assert grids[2][0] == 0.0 and grids[2][-1] == pytest.approx(2 * math.pi)
    assert grids[3][0] == 0.0 and grids[4][-1] == 1.0


def test_generated_images_match_renders_of_their_own_factors() -> None:
    images, factors, _ = generate_shapes(30, image_size=32, seed=2)
    assert torch.equal(images, render_shapes(*factors.unbind(dim=1), image_size=32))


def test_factor_indices_cover_every_value_of_each_factor() -> None:
    factor_idx = factor_indices(20_000, seed=0)
    for k, size in enumerate(FACTOR_SIZES):
        assert factor_idx[:, k].unique().numel() == size


def test_names_and_sizes_describe_the_dsprites_grid() -> None:
    assert SHAPE_NAMES == ("square", "ellipse", "heart")
    assert FACTOR_NAMES == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert math.prod(FACTOR_SIZES) == 737_280


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_orientation_zero_and_two_pi_render_identically(shape: int) -> None:
    zero = render_shapes(shape, 1.0, 0.0, 0.3, 0.7, image_size=64)
    full_turn = render_shapes(shape, 1.0, factor_values()[2][-1], 0.3, 0.7, image_size=64)
    assert torch.equal(zero, full_turn)
    assert zero.sum() > 0


@pytest.mark.parametrize("size", [28, 32, 64])
def test_center_of_mass_follows_pos_x_and_pos_y(size: int) -> None:
    pos = torch.linspace(0, 1, 8)
    _, cols = _center_of_mass(render_shapes(SQUARE, 1.0, 0.0, pos, 0.5, image_size=size))
    rows, _ = _center_of_mass(render_shapes(SQUARE, 1.0, 0.0, 0.5, pos, image_size=size))
    assert (cols.diff() > 0).all()  # pos_x moves the shape right
    assert (rows.diff() > 0).all()  # pos_y moves it down: 0 is the top
    assert cols[0] < size / 3 and cols[-1] > 2 * size / 3


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_pixel_count_grows_with_scale(shape: int) -> None:
    scales = factor_values()[1]
    images = render_shapes(shape, scales, 0.4, 0.5, 0.5, image_size=64)
    counts = (images > 0).sum(dim=(1, 2, 3))
    assert (counts.diff() > 0).all()


def test_square_at_scale_one_is_a_quarter_of_the_image_wide() -> None:
    image = render_shapes(SQUARE, 1.0, 0.0, 0.5, 0.5, image_size=64)[0, 0]
    lit_rows = image.amax(dim=1).nonzero().squeeze(1)
    lit_cols = image.amax(dim=0).nonzero().squeeze(1)
    assert lit_rows.tolist() == list(range(24, 40))
    assert lit_cols.tolist() == list(range(24, 40))
    assert image.sum() == 16 * 16 * 255


def test_ellipse_turned_a_quarter_turn_is_the_image_rotated() -> None:
    flat = render_shapes(ELLIPSE, 1.0, 0.0, 0.5, 0.5, image_size=64)
    upright = render_shapes(ELLIPSE, 1.0, math.pi / 2, 0.5, 0.5, image_size=64)
    assert not torch.equal(flat, upright)
    assert torch.equal(torch.rot90(flat, 1, dims=(-2, -1)), upright)


def test_heart_points_down_with_its_lobes_on_top() -> None:
    image = render_shapes(HEART, 1.0, 0.0, 0.5, 0.5, image_size=64)[0, 0] > 0
    top, bottom = image[:32].sum(), image[32:].sum()
    assert top > bottom
    assert torch.equal(image, image.flip(-1))  # symmetric left-right
    half_turn = render_shapes(HEART, 1.0, math.pi, 0.5, 0.5, image_size=64)[0, 0] > 0
    assert half_turn[32:].sum() > half_turn[:32].sum()


def test_three_shapes_render_differently() -> None:
    images = render_shapes(torch.arange(3), 1.0, 0.0, 0.5, 0.5, image_size=64)
    counts = (images > 0).sum(dim=(1, 2, 3)).tolist()
    assert len(set(counts)) == 3
    assert counts[SQUARE] > counts[HEART] > counts[ELLIPSE]


@pytest.mark.parametrize("size", [28, 32, 64])
def test_largest_shapes_at_the_corners_stay_inside_the_image(size: int) -> None:
    # Every shape, largest scale, all 40 orientations, all four extreme positions.
    extremes = torch.tensor([0.0, 1.0])
    grids = torch.meshgrid(torch.arange(3.0), factor_values()[2], extremes, extremes, indexing="ij")
    shape, angle, px, py = (g.reshape(-1) for g in grids)  # (480,) each
    images = render_shapes(shape, 1.0, angle, px, py, image_size=size)[:, 0]  # (480, S, S)
    border = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1)
    assert border.sum() == 0
    assert (images.flatten(1).sum(dim=1) > 0).all()


def test_render_rejects_a_tiny_image_size() -> None:
    with pytest.raises(ValueError, match="8"):
        render_shapes(SQUARE, 1.0, 0.0, 0.5, 0.5, image_size=8)


def test_generate_rejects_a_non_positive_count() -> None:
    with pytest.raises(ValueError, match="0"):
        generate_shapes(0)
