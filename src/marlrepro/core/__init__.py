"""The training core shared by every learner family: packs of runs with stacked weights
(:mod:`~marlrepro.core.stacked`), their optimisers (:mod:`~marlrepro.core.optim`) and the pack
trainer (:mod:`marlrepro.train`). ``docs/architecture.md`` describes how a learner plugs in."""
