"""The entry points, and the only floor that ties training and evaluation together.

* :mod:`distrl_agents.cli.train` -- ``distrl-train`` (and ``python -m distrl_agents.train``):
  the Hydra app; the only module that imports Hydra.
* :mod:`distrl_agents.cli.eval` -- ``distrl-eval``: greedy evaluation of a trained checkpoint.
* :mod:`distrl_agents.cli.report` -- ``distrl-report``: tables, aggregates and plots of runs.

Each holds argument handling only; the work is done by :mod:`distrl_agents.training` and
:mod:`distrl_agents.evaluation`, which take explicit arguments.
"""
