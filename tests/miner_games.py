"""Hand-made Gold Miner games for the tests (``test_miner.py``, ``test_miner_bots.py``)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from marlrepro.envs.miner import Game
from marlrepro.envs.miner_maps import FOREST, HEIGHT, LAND, SWAMP, TRAP, WIDTH

CODES = {".": LAND, "F": FOREST, "T": TRAP, "S": SWAMP}


def game(pos, *, gold=None, cells=None, energy=50, t=0, rests=0) -> Game:
    """A land map with ``cells`` {(x, y): 'F' | 'T' | 'S'} and ``gold`` {(x, y): amount}; four
    players at ``pos`` [(x, y)] (one list entry per player), all with ``energy``."""
    terrain = np.full((HEIGHT, WIDTH), LAND, np.int32)
    for (x, y), code in (cells or {}).items():
        terrain[y, x] = CODES[code]
    cost = np.select([terrain == TRAP, terrain == SWAMP], [10, 5], 1).astype(np.int32)
    amounts = np.zeros((HEIGHT, WIDTH), np.int32)
    for (x, y), amount in (gold if gold is not None else {(20, 8): 1000}).items():
        amounts[y, x] = amount
    n = len(pos)
    full = (lambda v: jnp.full(n, v, jnp.int32)) if np.isscalar(energy) else None
    return Game(terrain=jnp.asarray(terrain), cost=jnp.asarray(cost), gold=jnp.asarray(amounts),
                pos=jnp.asarray(pos, jnp.int32), energy=full(energy) if full else jnp.asarray(energy, jnp.int32),
                score=jnp.zeros(n, jnp.int32), rests=jnp.full(n, rests, jnp.int32),
                status=jnp.zeros(n, jnp.int32), t=jnp.int32(t))
