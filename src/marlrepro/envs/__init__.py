"""Batched multi-agent environments behind one interface (see :mod:`marlrepro.envs.base`)."""

from marlrepro.envs.base import BatchedEnv, EnvBatch, EnvSpec
from marlrepro.envs.registry import make, validate_env

__all__ = ["BatchedEnv", "EnvBatch", "EnvSpec", "make", "validate_env"]
