"""Procedural dSprites-like images: a shape at a scale, rotation and position, with factors.

Everything is rendered in-process from a seed (binary 0/255 pixels, no anti-aliasing), so the
dataset works offline and carries the ground-truth factors that disentanglement metrics need.
"""

from __future__ import annotations

import math

import torch

SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)  # as dSprites: 737,280 combinations

# Half-size of a shape at scale 1, in image coordinates that run from -1 to 1 across the image:
# the square at scale 1 is a quarter of the image wide (16 px at 64).
_HALF_SIZE = 0.25
# Largest distance from a shape's centre to its outline, in half-sizes: the square's corner.
# The ellipse (1.0) and the heart (about 1.2) stay inside it at every rotation.
_BOUNDING_RADIUS = math.sqrt(2.0)
# Heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 spans y in [-1, 1.236]: shift and shrink it so
# it is 2 half-sizes tall and centred like the square.
_HEART_SHIFT = 0.118
_HEART_SCALE = 2.0 / 2.236
_CHUNK = 128  # images per vectorised step: (128, 64, 64) float temporaries stay in cache


def factor_values() -> tuple[torch.Tensor, ...]:
    """The value grid of each factor (as dSprites), indexed by `factor_indices`' columns."""
    return (
        torch.arange(FACTOR_SIZES[0], dtype=torch.float32),  # shape index
        torch.linspace(0.5, 1.0, FACTOR_SIZES[1]),  # scale
        torch.linspace(0.0, 2 * math.pi, FACTOR_SIZES[2]),  # orientation, 0 and 2pi both present
        torch.linspace(0.0, 1.0, FACTOR_SIZES[3]),  # pos_x, 0 = left
        torch.linspace(0.0, 1.0, FACTOR_SIZES[4]),  # pos_y, 0 = top
    )


def factor_indices(num_samples: int, seed: int = 0) -> torch.Tensor:
    """(N, 5) int64 factor class indices drawn uniformly and independently from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    columns = [torch.randint(size, (num_samples,), generator=gen) for size in FACTOR_SIZES]
    return torch.stack(columns, dim=1)  # (N, 5)


def indices_to_factors(factor_idx: torch.Tensor) -> torch.Tensor:
    """(N, 5) int64 factor indices -> (N, 5) float32 factor values."""
    grids = factor_values()
    return torch.stack([grids[k][factor_idx[:, k]] for k in range(len(grids))], dim=1)


def generate_shapes(
    num_samples: int, image_size: int = 64, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random factor combinations and their renders, deterministic in `seed`.

    Returns:
        images (N, 1, S, S) uint8 in {0, 255}, factors (N, 5) float32 values
        (shape, scale, orientation in radians, pos_x, pos_y) and factor_idx (N, 5) int64.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    factor_idx = factor_indices(num_samples, seed)
    factors = indices_to_factors(factor_idx)
    images = render_shapes(*factors.unbind(dim=1), image_size=image_size)
    return images, factors, factor_idx


def render_shapes(
    shape_idx: torch.Tensor | int,
    scale: torch.Tensor | float,
    orientation: torch.Tensor | float,
    pos_x: torch.Tensor | float,
    pos_y: torch.Tensor | float,
    image_size: int = 64,
) -> torch.Tensor:
    """Render shapes at exact factor values (broadcast to N); returns (N, 1, S, S) uint8.

    shape_idx indexes SHAPE_NAMES; scale is relative (1 = largest dSprites scale); orientation is
    counter-clockwise in radians; pos_x, pos_y in [0, 1] place the centre left->right and
    top->bottom within the range where the largest shape fits at any rotation.
    """
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    shape_idx, scale, orientation, pos_x, pos_y = torch.broadcast_tensors(
        *(torch.as_tensor(v).reshape(-1) for v in (shape_idx, scale, orientation, pos_x, pos_y))
    )
    images = torch.zeros(shape_idx.shape[0], 1, image_size, image_size, dtype=torch.uint8)
    for k, inside in enumerate((_in_square, _in_ellipse, _in_heart)):
        # One shape at a time, so each pixel runs one inside-test; chunks keep temporaries small.
        rows = (shape_idx == k).nonzero().squeeze(1)
        for part in rows.split(_CHUNK):
            u, v = _shape_coordinates(
                scale[part], orientation[part], pos_x[part], pos_y[part], image_size
            )
            images[part, 0] = inside(u, v).to(torch.uint8).mul_(255)
    return images


def _shape_coordinates(
    scale: torch.Tensor,
    orientation: torch.Tensor,
    pos_x: torch.Tensor,
    pos_y: torch.Tensor,
    S: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres in each shape's own frame (rotated, in half-sizes), each (B, S, S)."""
    # Centres may travel as far as keeps the largest shape's bounding circle one pixel off the
    # border, so no shape is ever clipped (dSprites keeps its sprites whole the same way).
    reach = 1.0 - _BOUNDING_RADIUS * _HALF_SIZE - 2.0 / S
    cx = (pos_x.double() * 2 - 1) * reach  # (B,)
    cy = (1 - pos_y.double() * 2) * reach  # (B,) y points up; pos_y = 0 is the top
    # Reduce the angle first so 0 and 2pi give bit-identical cos/sin and identical images.
    theta = torch.remainder(orientation.double(), 2 * math.pi)
    inv_half = 1.0 / (scale.double() * _HALF_SIZE)  # (B,)
    cos = (torch.cos(theta) * inv_half).float()[:, None, None]  # (B, 1, 1)
    sin = (torch.sin(theta) * inv_half).float()[:, None, None]  # (B, 1, 1)
    grid = (torch.arange(S, dtype=torch.float64) + 0.5) * (2.0 / S) - 1  # pixel centres, (S,)
    dx = (grid[None, None, :] - cx[:, None, None]).float()  # (B, 1, S)
    dy = (-grid[None, :, None] - cy[:, None, None]).float()  # (B, S, 1) rows run downwards
    # Rotating the pixel grid by -theta rotates the shape by +theta.
    u = cos * dx + sin * dy  # (B, S, S)
    v = cos * dy - sin * dx  # (B, S, S)
    return u, v


def _in_square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 1


def _in_ellipse(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return u.square() + (v / 0.5).square() <= 1  # semi-axes 1 and 0.5, like dSprites' ellipse


def _in_heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    x = u / _HEART_SCALE
    y = v / _HEART_SCALE + _HEART_SHIFT
    r = x.square() + y.square() - 1
    return r * r * r - x.square() * y * y * y <= 0
