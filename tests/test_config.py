"""Bad configuration is rejected before any compute, with the field and the valid choices."""

from __future__ import annotations

import pytest
import torch

from marlrepro.config import load_config, parse_override
from marlrepro.core.optim import StackedAdam, StackedRMSprop, build_optimizer
from marlrepro.errors import ConfigError


def test_overrides_are_typed_and_dotted():
    cfg = load_config(overrides=["learner.lr=5e-4", "run.t_max=2e6", "algo=vdn",
                                 "env.name=matrix:me_igm", "learner.double_q=false"])
    assert cfg.learner.lr == 5e-4 and cfg.run.t_max == 2_000_000 and cfg.algo == "vdn"
    assert cfg.learner.double_q is False


@pytest.mark.parametrize("override, words", [
    ("algo=qplexx", ["algo", "iql", "qmix", "vdn"]),
    ("learner.lrr=1", ["learner.lrr", "lr", "batch_size"]),
    ("learner.batch_size=abc", ["learner.batch_size", "integer"]),
    ("learner.double_q=3", ["learner.double_q", "true/false"]),
    ("run.device=tpu", ["run.device", "cpu", "cuda"]),
    ("env.name=smax:9zz", ["9zz", "3m", "3s5z"]),
    ("env.name=starcraft:3m", ["starcraft", "matrix", "mpe", "smax"]),
    ("learner.td_lambda=1.5", ["learner.td_lambda", "[0, 1]"]),
    ("mixer.adv_hypernet_layers=4", ["mixer.adv_hypernet_layers", "unknown value 4", "1, 2, 3"]),
    ("mixer.hypernet_layers=3", ["mixer.hypernet_layers", "unknown value 3", "1, 2"]),
    ("mixer.num_kernel=0", ["mixer.num_kernel", ">= 1"]),
    ("learner.optim_eps=0", ["learner.optim_eps", "> 0"]),
    ("learner.optim_eps=tiny", ["learner.optim_eps", "a number"]),
])
def test_bad_values_name_the_field_and_choices(override, words):
    base = [] if override.startswith("env.") else ["env.name=matrix:me_igm"]
    with pytest.raises(ConfigError) as err:
        load_config(overrides=base + [override])
    for word in words:
        assert word in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config([tmp_path / "missing.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("learner: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([bad])
    nested = tmp_path / "nested.yaml"
    nested.write_text("learner: 3\n")
    with pytest.raises(ConfigError, match="learner"):
        load_config([nested])


def test_override_syntax():
    assert parse_override("a.b=1") == {"a": {"b": 1}}
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("learner.lr")


@pytest.mark.parametrize(("files", "overrides", "optimizer", "eps"), [
    (["config/algos/qmix.yaml"], [], StackedAdam, 1e-8),  # pymarl2 passes no eps: torch's default
    (["config/algos/qmix.yaml"], ["learner.optim_eps=1e-3"], StackedAdam, 1e-3),
    (["config/algos/dmix.yaml"], [], StackedAdam, 1e-5),  # DFAC passes its optim_eps to Adam
    ([], [], StackedAdam, 1e-8),  # unset: the optimiser's reference default
    ([], ["learner.optimizer=rmsprop"], StackedRMSprop, 1e-5),
    ([], ["learner.optimizer=rmsprop", "learner.optim_eps=1e-3"], StackedRMSprop, 1e-3),
])
def test_optim_eps_reaches_the_optimiser(files, overrides, optimizer, eps):
    config = load_config(files, ["env.name=matrix:me_igm", *overrides])
    built = build_optimizer([torch.zeros(1, 2, requires_grad=True)], config.learner, torch.tensor([config.learner.lr]))
    assert type(built) is optimizer and built.eps == pytest.approx(eps)
    if optimizer is StackedRMSprop:
        assert built.alpha == config.learner.optim_alpha


# recipe files: another recipe of a method, whose runs carry the method's label
RECIPES = {"mappo_expert": "mappo"}  # MIFQ's larger MAPPO for its experts


def test_every_algorithm_file_trains_the_method_its_name_says():
    """``config/algos/<name>.yaml`` trains the method ``<name>`` (``method_name``: the label of its
    runs' directories, tables and MLflow runs), so an experiment's ``algos`` list means what it says;
    a recipe file (:data:`RECIPES`) trains the method it names."""
    from pathlib import Path

    from marlrepro.train import method_name

    for path in sorted(Path("config/algos").glob("*.yaml")):
        assert method_name(load_config([str(path)], [])) == RECIPES.get(path.stem, path.stem), path
