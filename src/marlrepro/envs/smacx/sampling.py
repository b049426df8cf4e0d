"""Per-episode draws: start positions (SMAX's for SMAC maps, SMACv2's otherwise) and SMACv2 teams.

The samplers take uniform noise rather than PRNG keys, so that a reset makes one
``jax.random.uniform`` call (:func:`uniform_parts`): on XLA every PRNG call expands into its own
hashing code, and one call instead of dozens keeps compile times short.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from marlrepro.envs.smacx.scenarios import Race

# SMACv2's surrounded distribution puts the inner ends of its four diagonals 2 units from the
# centre; it spawns every unit of a group on one point and lets SC2 spread them out.
_DIAGONAL_OFFSET = 2.0
_DIAGONAL_SIGNS = jnp.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
# Approximation of SC2's spreading of units spawned on one point: uniform jitter of +-1 per axis
# (SMAX's collision push then separates them). Spawns are kept 1 unit (the largest unit radius)
# inside the map edge, as SC2 places units on pathable ground, and SMACv2's diagonals end in the
# corners.
_SPAWN_JITTER = 1.0
_EDGE_MARGIN = 1.0
# Candidate teams drawn at once for SMACv2's rejection rule; the first valid one is used. A team
# has at least one member, so all candidates fail with probability <= 0.1 ** 16: exact in practice.
_TEAM_CANDIDATES = 16


def uniform_parts(key: jax.Array, **shapes: tuple[int, ...]) -> dict[str, jax.Array]:
    """Independent U[0, 1) arrays of the given shapes, cut from one PRNG call."""
    sizes = [math.prod(shape) for shape in shapes.values()]
    flat = jax.random.uniform(key, (sum(sizes),))
    parts, start = {}, 0
    for (name, shape), size in zip(shapes.items(), sizes, strict=True):
        parts[name] = flat[start : start + size].reshape(shape)
        start += size
    return parts


def smax_start_positions(key: jax.Array, num_allies: int, num_enemies: int, size: jax.Array) -> jax.Array:
    """SMAX's default start (used for SMAC maps): allies around (W/4, H/2), enemies around (3W/4, H/2),
    each unit with SMAX's uniform noise of +-2 per axis. Returns ``[allies + enemies, 2]``."""
    noise = 4.0 * jax.random.uniform(key, (num_allies + num_enemies, 2)) - 2.0
    centres = jnp.where(jnp.arange(num_allies + num_enemies)[:, None] < num_allies, 0.25, 0.75)
    return jnp.concatenate([centres, jnp.full_like(centres, 0.5)], axis=1) * size + noise


def reflect_positions(
    allies_u: jax.Array, extra_u: jax.Array, num_enemies: int, size: jax.Array
) -> jax.Array:
    """SMACv2's ``reflect_position`` from uniform noise ``allies_u [A, 2]`` and ``extra_u [E - A, 2]``:
    allies uniform in ``[0, W/2 - 1) x [0, H)``, enemy i at ally i's position mirrored in the
    vertical centre line, extra enemies uniform in the right half."""
    allies = allies_u * jnp.array([size[0] / 2 - 1, size[1]])
    mirrored = jnp.stack([size[0] - allies[:, 0], allies[:, 1]], axis=1)[:num_enemies]
    extra = jnp.array([size[0] / 2, 0.0]) + extra_u * jnp.array([size[0] / 2, size[1]])
    return jnp.concatenate([allies, mirrored, extra])


def surrounded_positions(u: dict[str, jax.Array], num_allies: int, size: jax.Array) -> jax.Array:
    """SMACv2's ``surrounded`` from uniform noise ``u`` (keys ``groups``, ``diagonals`` [4], ``t`` [4],
    ``membership`` [E], ``jitter`` [A + E, 2]): allies at the centre, enemies in 1-4 groups on
    distinct diagonals.

    The number of groups is uniform in 1..4; group sizes are multinomial with equal probabilities
    (drawn as i.i.d. uniform group labels, sorted so that groups are contiguous as SMACv2 fills
    them); each group sits at a uniform fraction ``t`` of the way from its corner to the diagonal's
    inner end. SC2's spreading of co-located units is approximated by jitter.
    """
    centre = size / 2
    n_groups = 1 + jnp.floor(4 * u["groups"]).astype(jnp.int32)
    diagonals = jnp.argsort(u["diagonals"])  # a uniformly random permutation of the 4 diagonals
    group = jnp.sort(jnp.floor(n_groups * u["membership"]).astype(jnp.int32))
    signs = _DIAGONAL_SIGNS[diagonals[group]]
    t = u["t"][group, None]
    enemies = (centre + _DIAGONAL_OFFSET * signs) * t + (centre + centre * signs) * (1 - t)
    allies = jnp.broadcast_to(centre, (num_allies, 2))
    return jnp.concatenate([allies, enemies]) + _SPAWN_JITTER * (2 * u["jitter"] - 1)


def smacv2_position_noise(num_allies: int, num_enemies: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the uniform noise :func:`smacv2_start_positions` consumes."""
    return {
        "choice": (),
        "groups": (),
        "diagonals": (4,),
        "t": (4,),
        "membership": (num_enemies,),
        "jitter": (num_allies + num_enemies, 2),
        "allies": (num_allies, 2),
        "extra": (max(num_enemies - num_allies, 0), 2),
    }


def smacv2_start_positions(
    u: dict[str, jax.Array], num_allies: int, num_enemies: int, size: jax.Array
) -> jax.Array:
    """SMACv2's ``surrounded_and_reflect`` with ``p = 0.5``, kept inside the map edge.

    ``u`` holds uniform noise of the shapes :func:`smacv2_position_noise` gives.
    """
    positions = jnp.where(
        u["choice"] < 0.5,
        surrounded_positions(u, num_allies, size),
        reflect_positions(u["allies"], u["extra"], num_enemies, size),
    )
    return keep_inside(positions, size)


def keep_inside(positions: jax.Array, size: jax.Array) -> jax.Array:
    """Spawn positions clipped to 1 unit inside the map edge (every unit's body on the map)."""
    return jnp.clip(positions, _EDGE_MARGIN, size - _EDGE_MARGIN)


def _pick_team(race: Race, u: jax.Array) -> jax.Array:
    """SMACv2's ``_gen_team`` from uniform noise ``u [candidates, n, 3]``: i.i.d. types with the race's
    weights (Gumbel-max), redrawn while every member is an exception type (rejection sampling:
    the first candidate that is not all exceptions)."""
    unit_types = jnp.asarray(race.unit_types, dtype=jnp.int32)
    gumbel = -jnp.log(-jnp.log(jnp.clip(u, 1e-12, 1.0 - 1e-7)))
    teams = unit_types[jnp.argmax(jnp.log(jnp.asarray(race.weights)) + gumbel, axis=-1)]
    if not race.exceptions:
        return teams[0]
    only_exceptions = jnp.all(jnp.isin(teams, jnp.asarray(race.exceptions)), axis=1)
    return teams[jnp.argmin(only_exceptions)]


def smacv2_team_noise(num_allies: int, num_enemies: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the uniform noise :func:`sample_smacv2_teams` consumes."""
    extra = max(num_enemies - num_allies, 0)
    return {"ally_team": (_TEAM_CANDIDATES, num_allies, 3), "extra_team": (_TEAM_CANDIDATES, extra, 3)}


def sample_smacv2_teams(u: dict[str, jax.Array], race: Race, num_allies: int, num_enemies: int) -> jax.Array:
    """SMACv2's ``weighted_teams``: unit types ``[allies + enemies]`` (int32) of one episode.

    The ally team is drawn once; enemy i has ally i's type (the enemies mirror the allies), and
    extra enemies (``num_enemies > num_allies``) are a second team drawn from the same distribution
    with the same exception rule, as SMACv2's ``WeightedTeamsDistribution.generate``. (JaxMARL's
    SMAX drops its extra-enemy draw, leaving them marines; this does not.) ``u`` holds uniform
    noise of the shapes :func:`smacv2_team_noise` gives.
    """
    allies = _pick_team(race, u["ally_team"])
    parts = [allies, allies[:num_enemies]]
    if num_enemies > num_allies:
        parts.append(_pick_team(race, u["extra_team"]))
    return jnp.concatenate(parts)


def sort_allies_by_type(
    types: jax.Array, positions: jax.Array, num_allies: int
) -> tuple[jax.Array, jax.Array]:
    """Reorder the allies (types and positions together) by unit type, as SMAC/SMACv2 number their
    agents in unit-type order; the enemies keep their order."""
    order = jnp.argsort(types[:num_allies], stable=True)
    return (
        types.at[:num_allies].set(types[:num_allies][order]),
        positions.at[:num_allies].set(positions[:num_allies][order]),
    )
