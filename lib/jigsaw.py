"""The jigsaw pretext task of JigsawGAN (Peña Alarcón 2024, UCL report, section 2 and Fig. 2).

An image is cut into a ``side x side`` grid of tiles (4 or 9 tiles), the tiles are rearranged by
one permutation out of a fixed set, and the discriminator learns to say which one. The report
says the permutations are "a selected set of 30 permutations based on Hamming distance",
HD(p1, p2) = sum_i 1(p1_i != p2_i). The authors' code (kawaiiblitz/GAN_SelfSupervised @5a8e92f,
``pretrain_methods.py``: ``get_perms``, ``generate_maximal_hamming_set``, ``shuffle_image``) does:

- 4 tiles: all 4! = 24 permutations, in ``itertools.permutations`` order (30 cannot exist);
- 9 tiles: the greedy maximal-Hamming-distance set of Noroozi & Favaro (ECCV 2016): one
  permutation at random, then repeatedly the remaining permutation of the 9! with the largest
  *sum* of Hamming distances to those already chosen (``np.argmax``: the first in itertools order
  on ties);
- shuffling: output tile ``i`` <- input tile ``perm[i]``, on a grid of ``H // side`` pixel tiles;
  the pixels the grid does not cover stay zero (the output starts as ``torch.zeros_like``).

Here everything is vectorised: the greedy search keeps one running distance-sum over all 9!
permutations (seconds, where the authors' list-of-lists version takes minutes), and the whole
batch is shuffled with one gather on its device.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------
# The permutation set


def lexicographic_permutations(n_items: int) -> np.ndarray:
    """All ``n_items!`` permutations of ``range(n_items)`` as an ``(n!, n)`` int8 array, in the
    order of ``itertools.permutations(range(n_items))`` (lexicographic), built without a Python
    loop over permutations: the permutations starting with ``i`` are ``i`` followed by those of
    ``n - 1`` items with every value ``>= i`` shifted up by one."""
    if n_items < 1 or n_items > 12:
        raise ValueError(f"n_items={n_items}: expected 1..12 (12! rows already take 5 GB)")
    perms = np.zeros((1, 0), dtype=np.int8)
    for k in range(1, n_items + 1):  # perms of k items from those of k - 1
        rest = perms[None, :, :] + (perms[None, :, :] >= np.arange(k, dtype=np.int8)[:, None, None])
        first = np.broadcast_to(np.arange(k, dtype=np.int8)[:, None, None], (k, len(perms), 1))
        perms = np.concatenate([first, rest.astype(np.int8)], axis=2).reshape(-1, k)
    return perms


def greedy_max_hamming(n_items: int, n: int, seed: int) -> np.ndarray:
    """Noroozi & Favaro's greedy set as the authors' ``generate_maximal_hamming_set`` runs it, for
    any number of items: the first permutation drawn at random (here ``np.random.default_rng(seed)``;
    the authors use Python's ``random.randint`` seeded with 42, so the two sets differ), then ``n - 1``
    times the not yet chosen permutation with the largest sum of Hamming distances to the chosen
    ones, ties to the first in itertools order. Returns ``(n, n_items)`` int64."""
    everything = lexicographic_permutations(n_items)
    if not 1 <= n <= len(everything):
        raise ValueError(f"n={n}: between 1 and {n_items}! = {len(everything)} permutations of {n_items} tiles")
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(everything)))]
    total = np.zeros(len(everything), dtype=np.int64)  # sum of distances to the chosen set
    taken = np.zeros(len(everything), dtype=bool)
    for _ in range(n - 1):
        last = chosen[-1]
        taken[last] = True
        total += (everything != everything[last]).sum(axis=1)
        chosen.append(int(np.argmax(np.where(taken, -1, total))))  # argmax: first maximum
    return everything[chosen].astype(np.int64)


def permutation_set(tiles: int, n: int = 30, seed: int = 0) -> torch.Tensor:
    """The jigsaw permutations, ``(P, tiles)`` int64: row ``k`` is the class-``k`` rearrangement.

    Args:
        tiles: 4 (a 2x2 grid) or 9 (3x3), the report's two settings.
        n: permutations for 9 tiles (the report's 30). Ignored for 4 tiles, which always get all
            24 permutations in itertools order, as in the authors' ``get_perms``: the report's
            "30 permutations" cannot hold there since 4! = 24.
        seed: the random first permutation of the greedy 9-tile set (``np.random.default_rng``).
    """
    if tiles == 4:
        return torch.from_numpy(lexicographic_permutations(4).astype(np.int64))
    if tiles == 9:
        return torch.from_numpy(greedy_max_hamming(9, n, seed))
    raise ValueError(f"tiles={tiles}: JigsawGAN cuts images into 4 (2x2) or 9 (3x3) tiles")


def hamming_distances(perms: torch.Tensor | np.ndarray | Sequence[Sequence[int]]) -> torch.Tensor:
    """``(P, P)`` int64: HD(p_i, p_j) = number of positions where the two permutations differ
    (report section 2)."""
    p = torch.as_tensor(np.asarray(perms) if not isinstance(perms, torch.Tensor) else perms)
    return (p[:, None, :] != p[None, :, :]).sum(-1)


def hamming_summary(perms: torch.Tensor | np.ndarray | Sequence[Sequence[int]]) -> dict[str, float]:
    """Minimum, mean and maximum Hamming distance over the pairs ``i < j`` of the set (DeshuffleGAN
    reports min 4, mean 8.26 for its 30 nine-tile permutations)."""
    d = hamming_distances(perms)
    if len(d) < 2:
        raise ValueError(f"a Hamming summary needs at least two permutations, got {len(d)}")
    i, j = torch.triu_indices(len(d), len(d), offset=1)
    pairs = d[i, j]
    return {"min": int(pairs.min()), "mean": float(pairs.double().mean()), "max": int(pairs.max())}


# --------------------------------------------------------------------------------------------
# Shuffling


def _grid_side(tiles: int) -> int:
    side = math.isqrt(tiles)
    if side * side != tiles:
        raise ValueError(f"permutations of {tiles} tiles: the tiles must form a square grid (4, 9, 16, ...)")
    return side


def shuffle_tiles(images: torch.Tensor, perms: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rearrange the tiles of each image by its permutation, as the authors' ``shuffle_image``.

    Each ``(C, H, W)`` image is cut into a ``side x side`` grid (``side = sqrt(T)``) of tiles of
    ``H // side`` by ``W // side`` pixels (the authors use ``H // side`` for both: their images
    are square); output tile ``i`` (row-major) is input tile ``perms[index[n], i]``. Pixels the grid
    does not cover (the last ``H % side`` rows and ``W % side`` columns, e.g. one row and one column
    at 64 px with 9 tiles) are 0 in the output, as the authors' code leaves them zero.

    One reshape and one gather for the whole batch; differentiable with respect to ``images``
    (G is trained through its shuffled fakes).

    Args:
        images: ``(N, C, H, W)``.
        perms: ``(P, T)`` permutations of ``range(T)``.
        index: ``(N,)`` class of each image, in ``0..P-1``.
    """
    n, c, h, w = images.shape
    side = _grid_side(perms.shape[1])
    th, tw = h // side, w // side
    if th == 0 or tw == 0:
        raise ValueError(f"images of {h}x{w} px are too small for a {side}x{side} grid")
    src = perms.to(images.device)[index.to(images.device)]  # (N, T): input tile for each position
    if src.shape != (n, side * side):
        raise ValueError(f"index has shape {tuple(index.shape)}: expected one permutation class per image ({n},)")
    grid = images[:, :, : side * th, : side * tw]
    tiles = grid.reshape(n, c, side, th, side, tw).permute(0, 2, 4, 1, 3, 5).reshape(n, side * side, c, th, tw)
    moved = tiles[torch.arange(n, device=images.device)[:, None], src]
    out = moved.reshape(n, side, side, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, side * th, side * tw)
    return F.pad(out, (0, w - side * tw, 0, h - side * th))


def random_shuffle(images: torch.Tensor, perms: torch.Tensor,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle each image by a permutation drawn uniformly from ``perms`` (the authors draw with
    ``np.random.randint`` per image). The labels are drawn with ``generator`` on its own device and
    returned on ``images.device``. Returns ``(shuffled images, labels (N,) int64)``."""
    device = generator.device if generator is not None else images.device
    labels = torch.randint(len(perms), (images.shape[0],), generator=generator, device=device).to(images.device)
    return shuffle_tiles(images, perms, labels), labels
