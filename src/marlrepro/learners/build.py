"""Which learner family a train config asks for."""

from __future__ import annotations

import torch

from marlrepro.config import INVERSE_Q_ALGOS, ON_POLICY_ALGOS, TrainConfig
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import Learner
from marlrepro.learners.bc import BCLearner
from marlrepro.learners.dagger_comm import build_dagger
from marlrepro.learners.ddpg import DDPGLearner
from marlrepro.learners.distributional import DistributionalLearner
from marlrepro.learners.fop import FOPLearner
from marlrepro.learners.hasac import HASACLearner
from marlrepro.learners.igm_da import DistributionalIGMDALearner, IGMDALearner
from marlrepro.learners.inverse_q import InverseSoftQLearner
from marlrepro.learners.joint_dqn import JointActionLearner
from marlrepro.learners.magail import MAGAILLearner
from marlrepro.learners.me_igm import MaxEntropyLearner
from marlrepro.learners.ppo import PPOLearner
from marlrepro.learners.sqil import MASQILLearner
from marlrepro.learners.value_decomposition import ValueDecompositionLearner


def build_learner(spec: EnvSpec, config: TrainConfig, device: torch.device) -> Learner:
    """The learner ``config`` asks for: FOP's actor-critic (algo ``fop``); PPO (``mappo``,
    ``ippo``); HASAC (``hasac``); the DDPG family (``ddpg``: MADDPG, independent DDPG, CESMA's
    centralised expert); behavioural cloning of demonstrations (``bc``); CESMA's decentralisation
    of an expert policy file by DAgger (``dagger``; with ``dagger.communication: learned`` its
    Algorithm 2, the students' words learned through the others' losses); CESMA's centralised DQN
    on the joint action (``joint_dqn``: exponential or one-at-a-time); the soft-Q
    imitation learners on demonstrations (MIFQ, IQVDN, IIQ: ``mifq``, ``iqvdn``, ``iiq``; MASQIL:
    ``masqil``); MAGAIL's PPO on discriminator rewards (``magail``); ME-IGM
    (``max_entropy.mode``); IGM-DA (``imitation.mode``) around value decomposition; or plain value
    decomposition, distributional for ``dmix``."""
    if config.algo == "fop":
        return FOPLearner(spec, config, device)
    if config.algo == "magail":
        return MAGAILLearner(spec, config, device)
    if config.algo in ON_POLICY_ALGOS:
        return PPOLearner(spec, config, device)
    if config.algo == "hasac":
        return HASACLearner(spec, config, device)
    if config.algo == "ddpg":
        return DDPGLearner(spec, config, device)
    if config.algo == "bc":
        return BCLearner(spec, config, device)
    if config.algo == "dagger":
        return build_dagger(spec, config, device)
    if config.algo == "joint_dqn":
        return JointActionLearner(spec, config, device)
    if config.algo in INVERSE_Q_ALGOS:
        return InverseSoftQLearner(spec, config, device)
    if config.algo == "masqil":
        return MASQILLearner(spec, config, device)
    if config.max_entropy.mode != "none":
        return MaxEntropyLearner(spec, config, device)
    distributional = config.algo == "dmix"
    if config.imitation.mode == "none":
        return (DistributionalLearner if distributional else ValueDecompositionLearner)(spec, config, device)
    return (DistributionalIGMDALearner if distributional else IGMDALearner)(spec, config, device)
