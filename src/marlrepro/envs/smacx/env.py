"""The extended SMAX environment (allies against the heuristic enemy) and its factory.

:class:`ExtendedSMAX` subclasses JaxMARL's ``SMAX`` for its configuration (unit-type arrays, agent
names, map and time step) and re-implements reset, stepping, observations, available actions and
reward with the SC2 rules of this package; SMAX's two-team internals (``step_env_no_decode``,
``_world_step``, ``get_obs_unit_list``, ...) are not used. It presents the interface of JaxMARL's
``HeuristicEnemySMAX``: ``agents`` are the allies, ``reset``/``step_env``/``step`` return
observation dicts with one entry per ally plus ``"world_state"``, the state is an
:class:`~marlrepro.envs.smacx.state.EnvState` whose ``state`` field holds ``unit_alive`` and
``step``, and ``num_allies``, ``obs_size``, ``state_size``, ``num_ally_actions`` and ``max_steps``
are set.

Episodes end (``dones["__all__"]``) when the battle is over or after exactly ``max_steps`` steps
(SMAC's ``episode_limit``; stock SMAX runs one step more). ``step`` auto-resets; ``step_env`` does not.
One step is SMAC's: 8 world steps of one SC2 game loop (1/22.4 s) each, 8/22.4 s in all.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from marlrepro.envs.smacx._jaxmarl import SMAX, Box, Discrete
from marlrepro.envs.smacx.actions import (
    NUM_MOVEMENT_ACTIONS,
    ally_avail_actions,
    decode_ally_actions,
)
from marlrepro.envs.smacx.combat import (
    Intents,
    mechanics_for,
    push_apart,
    settle,
    world_step,
)
from marlrepro.envs.smacx.heuristic import (
    ATTACK_MODES,
    enemy_actions,
    initial_heuristic_state,
)
from marlrepro.envs.smacx.observations import (
    View,
    ally_observations,
    smac_action_ids,
    world_state,
)
from marlrepro.envs.smacx.reward import REWARDS, outcome, smac_reward, smax_reward
from marlrepro.envs.smacx.sampling import (
    keep_inside,
    sample_smacv2_teams,
    smacv2_position_noise,
    smacv2_start_positions,
    smacv2_team_noise,
    smax_start_positions,
    sort_allies_by_type,
    uniform_parts,
)
from marlrepro.envs.smacx.scenarios import Scenario, get_scenario
from marlrepro.envs.smacx.state import EnvState, UnitState
from marlrepro.envs.smacx.units import (
    GAME_LOOP_S,
    GAME_LOOPS_PER_STEP,
    UNIT_TYPES,
    unit_table,
)
from marlrepro.errors import ConfigError, unknown_choice

FULL_SIGHT_KEY = "full_sight_obs"  # obs entry [num_allies, obs_size]: every ally at the scenario's sight

Arrays = dict[str, jax.Array]
StepOutput = tuple[Arrays, EnvState, Arrays, Arrays, Arrays]  # obs, state, rewards, dones, infos


class ExtendedSMAX(SMAX):
    """SMAC/SMACv2 scenarios on SMAX with SC2's Medivac, Colossus, Baneling, shields and SMAC's reward.

    Build it with :func:`make_extended_smax`. Every unit's sight and attack-order range are the
    scenario's (SMAC's ``unit_sight_range``/``unit_shoot_range``: 9 and 6 on SMAC maps, per type on
    SMACv2; :meth:`unit_sight_range`, :meth:`unit_shoot_range`). ``sight_range`` (None: the
    scenario's) overrides the allies' sight for their observations only; the enemy always sees at
    the scenario's sight. With ``full_sight_obs`` the observation dict also holds
    :data:`FULL_SIGHT_KEY`, the allies' observations at the scenario's sight (the "expert view" of
    IGM-DA).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        sight_range: float | None,
        full_sight_obs: bool,
        reward: str,
        episode_limit: int,
        attack_mode: str,
        enemy_shoots: bool,
    ) -> None:
        self.table = unit_table()
        super().__init__(
            num_allies=scenario.num_allies,
            num_enemies=scenario.num_enemies,
            unit_type_names=[unit.name for unit in UNIT_TYPES],
            unit_type_shorthands=[unit.shorthand for unit in UNIT_TYPES],
            unit_type_velocities=self.table.speed,
            unit_type_attacks=self.table.damage,
            unit_type_attack_ranges=self.table.attack_range,
            unit_type_sight_ranges=self.table.sight,
            unit_type_radiuses=self.table.radius,
            unit_type_health=self.table.health,
            unit_type_weapon_cooldowns=self.table.cooldown,
            walls_cause_death=False,  # not used: the map edge stops units (combat.on_map)
            world_steps_per_env_step=GAME_LOOPS_PER_STEP,
            time_per_step=GAME_LOOP_S,
            max_steps=episode_limit,
            smacv2_position_generation=scenario.race is not None,
            smacv2_unit_type_generation=scenario.race is not None,
        )
        self.scenario_spec = scenario
        self.sight_range = sight_range
        self.full_sight_obs = full_sight_obs
        self.reward_scheme = reward
        self.attack_mode = attack_mode
        self.enemy_shoots = enemy_shoots
        self.rules = mechanics_for(scenario.possible_types, self.table)
        # [num unit types] each: SMAC's unit_sight_range and unit_shoot_range (attack-order range)
        self.sight_by_type, self.shoot_range_by_type = scenario.unit_ranges(self.table)
        self.map_size = jnp.array([self.map_width, self.map_height], dtype=jnp.float32)
        self.view = View.of(
            scenario, self.table, self.num_ally_actions, (float(self.map_width), float(self.map_height))
        )
        self.obs_feature_names = self.view.obs_feature_names()
        self.state_feature_names = self.view.state_feature_names()
        # SMAX's layout attributes, redefined for SMAC's layout (enemy and ally blocks differ, so
        # SMAX's single per-unit list has no counterpart)
        self.own_features = self.obs_feature_names[self.view.other_units.stop :]
        self.unit_type_bits = self.view.type_bits
        del self.unit_features, self.see_enemy_actions
        self.obs_size = self.view.obs_size
        self.state_size = self.view.state_size
        self.ally_state_size = self.view.ally_state_size
        self.num_units = self.num_allies + self.num_enemies
        self.all_agents = self.agents
        self.agents = self.all_agents[: self.num_allies]
        self.enemy_agents = self.all_agents[self.num_allies :]
        self.num_agents = self.num_allies
        self.observation_spaces = {a: Box(low=-1.0, high=1.0, shape=(self.obs_size,)) for a in self.agents}
        self.action_spaces = {a: Discrete(num_categories=self.num_ally_actions) for a in self.agents}
        self._teams = jnp.concatenate(
            [jnp.zeros(self.num_allies, jnp.int32), jnp.ones(self.num_enemies, jnp.int32)]
        )

    # ---- episode start ----------------------------------------------------------------------

    def _draw_units(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Unit types ``[N]`` and start positions ``[N, 2]`` of a new episode."""
        a, e = self.num_allies, self.num_enemies
        race = self.scenario_spec.race
        if race is None:
            types = jnp.asarray(
                self.scenario_spec.ally_types + self.scenario_spec.enemy_types, dtype=jnp.int32
            )
            return types, smax_start_positions(key, a, e, self.map_size)
        u = uniform_parts(key, **smacv2_team_noise(a, e), **smacv2_position_noise(a, e))
        types = sample_smacv2_teams(u, race, a, e)
        return sort_allies_by_type(types, smacv2_start_positions(u, a, e, self.map_size), a)

    @partial(jax.jit, static_argnums=(0,))
    def reset(self, key: jax.Array) -> tuple[Arrays, EnvState]:
        """A new battle: full health, shields and starting energy, no cooldowns; overlapping
        spawns pushed apart once (as SMAX) and kept inside the map edge."""
        types, positions = self._draw_units(key)
        n = self.num_units
        units = UnitState(
            done=jnp.array(False),
            step=jnp.array(0, dtype=jnp.int32),
            unit_positions=positions,
            unit_alive=jnp.ones(n, dtype=jnp.bool_),
            unit_teams=self._teams,
            unit_health=self.table.health[types],
            unit_types=types,
            unit_weapon_cooldowns=jnp.zeros(n),
            prev_movement_actions=jnp.zeros((n, 2)),
            prev_attack_actions=jnp.zeros(n, dtype=jnp.int32),
            unit_shields=self.table.shields[types],
            unit_energy=self.table.start_energy[types],
            time_since_damage=jnp.zeros(n),
            ally_last_actions=jnp.full(self.num_allies, -1, dtype=jnp.int32),
        )
        units = push_apart(self.table, units)
        units = units.replace(unit_positions=keep_inside(units.unit_positions, self.map_size))
        state = EnvState(
            state=units, enemy_policy_state=initial_heuristic_state(units, self.num_allies, self.map_size)
        )
        return self.get_obs(state), state

    # ---- stepping ---------------------------------------------------------------------------

    def _advance(self, units: UnitState, intents: Intents, noise: jax.Array) -> UnitState:
        """``world_steps_per_env_step`` (8) world steps of ``time_per_step`` (one game loop) each.

        ``noise`` ``[world steps, N]`` (uniform in [0, 1)) becomes SMAX's pysc2-like cooldown
        jitter, uniform in ``[-dt, 2 dt]``.
        """
        dt = self.time_per_step

        def world(units: UnitState, jitter: jax.Array) -> tuple[UnitState, None]:
            units = world_step(self.table, self.rules, units, intents, jitter, dt, self.map_size)
            return settle(self.table, units, self.map_size), None

        return jax.lax.scan(world, units, 3 * dt * noise - dt)[0]

    @partial(jax.jit, static_argnums=(0,))
    def step_env(self, key: jax.Array, state: EnvState, actions: Arrays) -> StepOutput:
        """One environment step: ally actions and the heuristic enemy's, then 8 world steps.

        Returns ``(obs, state, rewards, dones, infos)``; every ally gets the team reward,
        ``dones[ally]`` is True for dead allies, ``infos["won"]`` marks a won battle.
        """
        units = state.state
        ally_actions = jnp.stack([jnp.asarray(actions[agent]) for agent in self.agents]).astype(jnp.int32)
        noise = uniform_parts(
            key,
            enemy=(2, self.num_enemies, self.num_allies),
            jitter=(self.world_steps_per_env_step, self.num_units),
        )
        enemy_move, enemy_target, enemy_code, memory = enemy_actions(
            self.table,
            self.rules,
            units,
            self.sight_by_type,
            state.enemy_policy_state,
            noise["enemy"],
            self.num_allies,
            self.attack_mode,
            self.enemy_shoots,
        )
        ally_move, ally_target = decode_ally_actions(
            self.table, self.rules, units, ally_actions, self.num_allies
        )
        intents = Intents(
            move=jnp.concatenate([ally_move, enemy_move]), target=jnp.concatenate([ally_target, enemy_target])
        )
        after = self._advance(units, intents, noise["jitter"])
        won, over = self._outcome(after)
        step = units.step + 1
        done = over | (step >= self.max_steps)
        ally_code = jnp.where(ally_actions >= NUM_MOVEMENT_ACTIONS, ally_actions, 0)
        after = after.replace(
            step=step,
            done=done,
            prev_movement_actions=intents.move,
            prev_attack_actions=jnp.concatenate([ally_code, enemy_code]).astype(jnp.int32),
            ally_last_actions=smac_action_ids(ally_actions, units.unit_alive[: self.num_allies]),
        )
        reward_fn = smac_reward if self.reward_scheme == "smac" else smax_reward
        reward = reward_fn(self.table, units, after, won, self.num_allies)
        new_state = EnvState(state=after, enemy_policy_state=memory)
        rewards = {agent: reward for agent in self.agents}
        dones = {agent: ~after.unit_alive[i] for i, agent in enumerate(self.agents)}
        dones["__all__"] = done
        return self.get_obs(new_state), new_state, rewards, dones, {"won": won}

    # ---- views of a state -------------------------------------------------------------------

    def unit_sight_range(self, units: UnitState) -> jax.Array:
        """Sight range of every unit ``[N]`` (SMAC's ``unit_sight_range``: 9 on SMAC maps, the unit
        type's on SMACv2), before any ``sight_range`` override of the allies' observations."""
        return self.sight_by_type[units.unit_types]

    def unit_shoot_range(self, units: UnitState) -> jax.Array:
        """Attack-order (and heal-order) range of every unit ``[N]``, the available-action mask's
        (SMAC's ``unit_shoot_range``: 6 on SMAC maps, ``max(weapon range, 2)`` on SMACv2). The
        weapon's own range (``table.attack_range``) decides when the attack lands."""
        return self.shoot_range_by_type[units.unit_types]

    def _ally_sight(self, units: UnitState) -> jax.Array:
        """The scenario's sight of each ally ``[A]``."""
        return self.unit_sight_range(units)[: self.num_allies]

    def get_obs(self, state: EnvState) -> Arrays:
        """Ally observations (one entry per ally), ``"world_state"``, and, if enabled, the full-sight view.

        SMAC's layout (:mod:`marlrepro.envs.smacx.observations`; names in ``obs_feature_names`` and
        ``state_feature_names``): the move and available-to-attack bits come from the allies'
        available-action mask, distances and offsets are over each ally's sight (``sight_range``,
        else :meth:`_ally_sight`); the full-sight view uses :meth:`_ally_sight`.
        """
        units = state.state
        avail = self._ally_avail(units)
        scenario_sight = self._ally_sight(units)
        sight = scenario_sight if self.sight_range is None else jnp.full(self.num_allies, self.sight_range)
        obs_array = ally_observations(self.table, units, self.view, sight, avail)
        obs = {agent: obs_array[i] for i, agent in enumerate(self.agents)}
        obs["world_state"] = world_state(self.table, units, self.view)
        if self.full_sight_obs:
            obs[FULL_SIGHT_KEY] = ally_observations(self.table, units, self.view, scenario_sight, avail)
        return obs

    def get_world_state(self, state: EnvState) -> jax.Array:
        """The global state ``[state_size]`` (see :func:`marlrepro.envs.smacx.observations.world_state`)."""
        return world_state(self.table, state.state, self.view)

    @partial(jax.jit, static_argnums=(0,))
    def get_avail_actions(self, state: EnvState) -> Arrays:
        """Available actions per ally, uint8 ``[num_ally_actions]`` each."""
        masks = self._ally_avail(state.state)
        return {agent: masks[i] for i, agent in enumerate(self.agents)}

    def _ally_avail(self, units: UnitState) -> jax.Array:
        """The allies' available-action mask ``[A, num_ally_actions]`` (uint8)."""
        return ally_avail_actions(
            self.table, self.rules, units, self.shoot_range_by_type, self.map_size, self.num_allies, self.num_enemies
        )

    def _outcome(self, units: UnitState) -> tuple[jax.Array, jax.Array]:
        """(won, battle over) by SMAC's end rules (:func:`marlrepro.envs.smacx.reward.outcome`)."""
        return outcome(self.table, units, self.num_allies)

    def won(self, state: EnvState) -> jax.Array:
        """True when the allies have won the battle in ``state`` (SMAC's end code 1)."""
        return self._outcome(state.state)[0]

    def battle_over(self, state: EnvState) -> jax.Array:
        """True when the battle in ``state`` has ended by SMAC's rules (not by the time limit)."""
        return self._outcome(state.state)[1]

    def is_terminal(self, state: EnvState) -> jax.Array:
        """True when the battle is over or the episode limit is reached."""
        return self.battle_over(state) | (state.state.step >= self.max_steps)


def make_extended_smax(
    scenario: str,
    *,
    sight_range: float | None = None,
    full_sight_obs: bool = False,
    reward: str = "smac",
    episode_limit: int | None = None,
    attack_mode: str = "closest",
    enemy_shoots: bool = True,
) -> ExtendedSMAX:
    """Build the extended SMAX for ``scenario`` (one of :data:`SCENARIOS`).

    Args:
        scenario: a SMAC map (``3m``, ``8m``, ``5m_vs_6m``, ``8m_vs_9m``, ``3s5z``, ``3s_vs_5z``,
            ``MMM2``) or a SMACv2 scenario ``{protoss,terran,zerg}_{5_vs_5,10_vs_10,10_vs_11,
            20_vs_20,20_vs_23}``.
        sight_range: the allies' sight range for their observations (e.g. 0 for IGM-DA's zero
            sight view); None keeps the scenario's (SMAC's 9 on SMAC maps, each unit type's on
            SMACv2). The enemy, the attack-order ranges and the weapons are unaffected.
        full_sight_obs: also return every ally's observation at the scenario's sight under
            :data:`FULL_SIGHT_KEY`.
        reward: ``"smac"`` (SMAC's default, maximum episode return 20) or ``"smax"`` (SMAX's).
        episode_limit: steps per episode; None uses the scenario's SMAC/SMACv2 limit.
        attack_mode: the heuristic enemy's target choice, ``"closest"`` or ``"random"``.
        enemy_shoots: False makes the enemy move but never attack (tests, curricula).

    SMAX's ``walls_cause_death`` and ``see_enemy_actions`` are not offered: the map edge stops units,
    as in SC2, and no observation shows last actions (SMAC's layout).
    """
    spec = get_scenario(scenario)
    if reward not in REWARDS:
        raise unknown_choice("env.options.reward", reward, REWARDS)
    if attack_mode not in ATTACK_MODES:
        raise unknown_choice("env.options.attack_mode", attack_mode, ATTACK_MODES)
    if sight_range is not None and not sight_range >= 0:
        raise ConfigError(f"env.options.sight_range: expected None or a number >= 0, got {sight_range!r}")
    limit = spec.episode_limit if episode_limit is None else episode_limit
    if limit < 1:
        raise ConfigError(f"env.options.episode_limit: expected a positive int, got {episode_limit!r}")
    return ExtendedSMAX(
        spec,
        sight_range=None if sight_range is None else float(sight_range),
        full_sight_obs=full_sight_obs,
        reward=reward,
        episode_limit=int(limit),
        attack_mode=attack_mode,
        enemy_shoots=enemy_shoots,
    )
