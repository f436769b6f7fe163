"""BlockMask / InverseBlockMask / CyclicMask (Franca supplement Algorithm 1; reference §5.2, §5.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from franca_core.masking import (
    MASK_GENERATORS,
    BlockMask,
    CyclicMask,
    DinoV2BlockMask,
    InverseBlockMask,
    MaskGenerator,
)

GRIDS = [(16, 16), (37, 37), (12, 20)]
EXACT_GENERATORS = [
    lambda g: BlockMask(g),
    lambda g: BlockMask(g, roll=True),
    lambda g: InverseBlockMask(g),
    lambda g: InverseBlockMask(g, roll=True),
    lambda g: CyclicMask(g),
]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize(
    "make", EXACT_GENERATORS, ids=["block", "block_roll", "inverse", "inverse_roll", "cyclic"]
)
def test_exact_masked_count(grid: tuple[int, int], make) -> None:
    gen = make(grid)
    N = grid[0] * grid[1]
    rng = np.random.default_rng(0)
    for n in [0, 1, 2, 25, N // 4, N // 2, N - 1, N, N + 5, *rng.integers(1, N, size=40).tolist()]:
        mask = gen(n, rng)
        assert mask.dtype == torch.bool and tuple(mask.shape) == grid
        assert int(mask.sum()) == min(max(n, 0), N), (n, gen)


def test_cyclic_mask_is_inverse_block_with_roll() -> None:
    gen = CyclicMask(16)
    assert isinstance(gen, InverseBlockMask) and gen.roll
    assert MASK_GENERATORS["cyclic"] is CyclicMask


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.4, 0.55, 0.65])
def test_cyclic_visible_ratio_bounds(ratio: float) -> None:
    gen, N = CyclicMask(16), 256
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(N * rng.uniform(ratio - 0.05 if ratio > 0.1 else 0.1, ratio))
        visible = N - int(gen(n, rng).sum())
        assert 0.35 * N <= visible <= 0.9 * N + 1


def test_inverse_is_complement_of_block_with_same_draws() -> None:
    for roll in (False, True):
        block, inverse = BlockMask(16, roll=roll), InverseBlockMask(16, roll=roll)
        for seed, n in enumerate([30, 100, 166, 200]):
            visible = block(256 - n, np.random.default_rng(seed))
            masked = inverse(n, np.random.default_rng(seed))
            assert torch.equal(masked, ~visible)


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


@pytest.mark.parametrize("n", [7, 30, 64, 100, 166])
def test_block_is_a_raster_truncated_rectangle(n: int) -> None:
    gen = BlockMask(16)
    rng = np.random.default_rng(n)
    for _ in range(100):
        mask = gen(n, rng).numpy()
        r0, _, c0, c1 = _bounding_box(mask)
        w = c1 - c0
        full_rows, rest = divmod(n, w)
        expected = np.zeros_like(mask)
        expected[r0 : r0 + full_rows, c0:c1] = True
        expected[r0 + full_rows, c0 : c0 + rest] = rest > 0
        assert np.array_equal(mask, expected)
        # w = ceil(sqrt(n / aspect)) with aspect in [0.3, 1 / 0.3] (clamped further to fit the grid).
        assert math.ceil(math.sqrt(n * 0.3)) <= w <= min(16, math.ceil(math.sqrt(n / 0.3)))


def test_block_aspect_is_log_symmetric_on_a_square_grid() -> None:
    gen, rng = BlockMask(16), np.random.default_rng(3)
    log_aspects = []
    for _ in range(2000):
        r0, r1, c0, c1 = _bounding_box(gen(36, rng).numpy())
        log_aspects.append(math.log((r1 - r0) / (c1 - c0)))
    # The clamped range is symmetric for n = 36 on 16 x 16: mean near 0, both orientations present.
    assert abs(np.mean(log_aspects)) < 0.1
    assert min(log_aspects) < -0.8 and max(log_aspects) > 0.8


def test_rolled_block_is_a_circular_shift_of_the_unrolled_one() -> None:
    for seed in range(20):
        plain = BlockMask(16)(50, np.random.default_rng(seed)).numpy()
        rolled = BlockMask(16, roll=True)(50, np.random.default_rng(seed)).numpy()
        shifts = [(r, c) for r in range(16) for c in range(16)]
        assert any(np.array_equal(np.roll(plain, s, axis=(0, 1)), rolled) for s in shifts)


def _masking_frequency(gen: MaskGenerator, draws: int, seed: int) -> np.ndarray:
    """Fraction of draws masking each position, ratios uniform in (0.1, 0.65) as in Franca training."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(gen.grid_size)
    for _ in range(draws):
        counts += gen(int(gen.num_patches * rng.uniform(0.1, 0.65)), rng).numpy()
    return counts / draws


def test_cyclic_mask_masks_every_position_equally_often() -> None:
    freq = _masking_frequency(CyclicMask(16), draws=5000, seed=0)
    cv = freq.std() / freq.mean()
    # Measured: cv 0.025, max/min 1.12 (sampling noise only: the marginal is exactly uniform).
    assert cv < 0.06
    assert freq.max() / freq.min() < 1.3


def test_inverse_block_without_roll_is_not_uniform() -> None:
    freq = _masking_frequency(InverseBlockMask(16), draws=5000, seed=0)
    cv = freq.std() / freq.mean()
    border = np.concatenate([freq[0], freq[-1], freq[1:-1, 0], freq[1:-1, -1]]).mean()
    centre = freq[6:10, 6:10].mean()
    # Measured: cv 0.71, border 0.74 vs centre 0.03: the visible rectangle mostly covers the centre.
    assert cv > 0.4
    assert border > 5 * centre


@pytest.mark.parametrize("name", sorted(MASK_GENERATORS))
def test_registry_generators_are_seeded_and_deterministic(name: str) -> None:
    gen = MASK_GENERATORS[name]((14, 18))
    assert isinstance(gen, MaskGenerator)
    assert gen.grid_size == (14, 18) and gen.num_patches == 252
    first = [gen(n, np.random.default_rng(7)) for n in (30, 90, 160)]
    again = [gen(n, np.random.default_rng(7)) for n in (30, 90, 160)]
    other = [gen(n, np.random.default_rng(8)) for n in (30, 90, 160)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        BlockMask((0, 16))
    with pytest.raises(ValueError):
        CyclicMask(16, min_aspect=0.0)
    with pytest.raises(ValueError):
        DinoV2BlockMask(16, min_num_patches=0)
