"""The next target expression: the class least collected overall and for this player, with
some randomness (paper section 6.1: "change the show-up probabilities of facial expression
targets to control the final data distribution"). Pure: counts and a generator in, a name out."""
from __future__ import annotations

import numpy as np


def deficit(names: list[str], overall: dict[str, int], player: dict[str, int]) -> np.ndarray:
    """``[K]`` how far each class is behind, overall and for the player (each a share in [0, 1],
    0 for the most collected class). Both count, so a new player is asked for every class even
    when the overall set is balanced."""
    def behind(counts: dict[str, int]) -> np.ndarray:
        c = np.array([counts.get(n, 0) for n in names], np.float64)
        return (c.max() - c) / max(c.max(), 1.0)

    return behind(overall) + behind(player)


def choose_target(names: list[str], overall: dict[str, int], player: dict[str, int],
                  rng: np.random.Generator, explore: float = 0.2, avoid: tuple[str, ...] = ()) -> str:
    """With probability ``explore`` a uniformly random class; otherwise one of the classes with the
    largest deficit (ties broken at random). ``avoid``: classes already falling, when others exist."""
    pool = [n for n in names if n not in avoid] or list(names)
    if rng.random() < explore:
        return pool[int(rng.integers(len(pool)))]
    d = deficit(pool, overall, player)
    best = np.flatnonzero(d >= d.max() - 1e-12)
    return pool[int(rng.choice(best))]
