"""Configuration of ``recforge run``: the schema of ``recforge.yaml``, its loader, and ``init``.

One job per module:

- ``_schema``: the pydantic models of every section (:class:`RunConfig` and its parts) and
  :func:`parse_duration`;
- ``_loader``: :func:`load_config` / :func:`validate_config`, which keep the line of every
  YAML node, so a validation error names both the field path and the line of the file it
  came from, and suggest the nearest valid key for a misspelt one::

      recforge.yaml:14: models.als.factor: ALS has no parameter 'factor'; did you mean 'factors'?

  Model parameters are checked against each model's declared :class:`~recforge.models.Param`
  constraints, including the bounds of search spaces;
- ``_starter``: :func:`guess_columns` and :func:`starter_config` behind ``recforge init``.
"""

from __future__ import annotations

from recforge.pipeline.config._loader import load_config, validate_config
from recforge.pipeline.config._schema import (
    DataConfig,
    EngineConfig,
    EvaluationConfig,
    MlflowConfig,
    ModelConfig,
    OutputConfig,
    RunConfig,
    SearchSpace,
    SignificanceConfig,
    SplitConfig,
    TuningConfig,
    parse_duration,
)
from recforge.pipeline.config._starter import guess_columns, starter_config

__all__ = [
    "DataConfig",
    "EngineConfig",
    "EvaluationConfig",
    "MlflowConfig",
    "ModelConfig",
    "OutputConfig",
    "RunConfig",
    "SearchSpace",
    "SignificanceConfig",
    "SplitConfig",
    "TuningConfig",
    "guess_columns",
    "load_config",
    "parse_duration",
    "starter_config",
    "validate_config",
]
