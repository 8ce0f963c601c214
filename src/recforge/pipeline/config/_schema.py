"""Schema of ``recforge.yaml``: one pydantic model per section, and the duration parser."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_duration(value: Any) -> float | None:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1.5h"`` or ``None``.

    Raises
    ------
    ValueError
        If the value is not a positive duration.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '15m' or 900, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"expected a duration such as '90s', '15m' or '2h', got {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


Duration = Annotated[float | None, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- data
class AttributesConfig(_Strict):
    """An item or user attribute table."""

    path: Path
    """CSV or Parquet file, relative to the config file."""
    key: str
    """Column holding the item (or user) id."""


class ColumnsConfig(_Strict):
    """Which columns of the source hold the interaction fields."""

    user: str = "user"
    """User id column."""
    item: str = "item"
    """Item id column."""
    value: str | None = None
    """Rating/count column; ``None`` for implicit data (every interaction 1.0)."""
    time: str | None = None
    """Timestamp column (epoch seconds, datetimes or date strings)."""


class DataConfig(_Strict):
    """Where the interactions come from."""

    source: Literal["csv", "parquet", "sql", "builtin", "sequences"] = "csv"
    """Kind of source; ``sequences`` is a text file with one user per line, items oldest
    first (see :func:`recforge.data.read_sequences`; ``columns`` do not apply)."""
    path: Path | None = None
    """File for ``csv`` / ``parquet`` / ``sequences``, relative to the config file."""
    url: str | None = None
    """SQLAlchemy URL for ``sql``."""
    query: str | None = None
    """SQL query for ``sql``."""
    name: str | None = None
    """Data set name for ``builtin`` (see :func:`recforge.data.datasets.load`)."""
    columns: ColumnsConfig = ColumnsConfig()
    """Column mapping."""
    item_attributes: AttributesConfig | None = None
    """Optional item attribute table (genres, text, ...)."""
    user_attributes: AttributesConfig | None = None
    """Optional user attribute table."""

    @model_validator(mode="after")
    def _source_fields(self) -> DataConfig:
        need = {
            "csv": ["path"],
            "parquet": ["path"],
            "sql": ["url", "query"],
            "builtin": ["name"],
            "sequences": ["path"],
        }
        for name in need[self.source]:
            if getattr(self, name) is None:
                raise ValueError(f"source {self.source!r} needs the field {name!r}")
        return self


# --------------------------------------------------------------------------- split
class SplitConfig(BaseModel):
    """How interactions are divided into train / validation / test.

    ``method`` names a splitter of :mod:`recforge.split` (``temporal``, ``random``,
    ``user_random``, ``leave_one_out``, ``cold_start``, ...); every other key is passed to it as
    a keyword argument, e.g. ``{method: temporal, quantile: 0.8, valid_size: 0.1}``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    method: str = "user_random"
    """Splitter name."""

    def to_spec(self) -> dict[str, Any]:
        """``{"method": ..., **arguments}`` for :func:`recforge.split.split_by_name`."""
        return {"method": self.method, **(self.model_extra or {})}


class EngineConfig(_Strict):
    """Where preparation and splits run: ``local`` (default) or ``spark``.

    With ``spark`` the data are read, prepared and split on Spark (:mod:`recforge.spark`,
    same rows as locally), then collected for fitting, evaluation and the report.
    """

    type: Literal["local", "spark"] = "local"
    """Engine name."""
    master: str = "local[*]"
    """Spark master URL (ignored under ``spark-submit``, whose session is used)."""
    shuffle_partitions: int | None = Field(None, ge=1)
    """``spark.sql.shuffle.partitions`` of a new session."""
    config: dict[str, str] = Field(default_factory=dict)
    """Further Spark settings, e.g. ``{"spark.executor.memory": "8g"}``."""


# --------------------------------------------------------------------------- models
class SearchSpace(_Strict):
    """A search space for one hyperparameter: a numeric range or a list of choices."""

    type: Literal["int", "float"] | None = None
    """Number kind of a range."""
    low: float | None = None
    """Inclusive lower bound of a range."""
    high: float | None = None
    """Inclusive upper bound of a range."""
    log: bool = False
    """Sample the range on a log scale."""
    step: float | None = None
    """Optional step of a range."""
    choices: list[Any] | None = None
    """Categorical choices."""

    @model_validator(mode="after")
    def _shape(self) -> SearchSpace:
        if self.choices is not None:
            if self.type is not None or self.low is not None or self.high is not None:
                raise ValueError("give either 'choices' or 'type'/'low'/'high', not both")
            if not self.choices:
                raise ValueError("'choices' must not be empty")
            return self
        if self.type is None or self.low is None or self.high is None:
            raise ValueError("a range needs 'type' (int or float), 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"'low' ({self.low:g}) is greater than 'high' ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs 'low' > 0, got {self.low:g}")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int range needs integral 'low' and 'high'")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (only the fields that are set)."""
        return self.model_dump(exclude_none=True, exclude_defaults=True) | (
            {"type": self.type} if self.type else {}
        )


def _is_space(value: Any) -> bool:
    return isinstance(value, Mapping) and ("choices" in value or "type" in value)


def _rerank_settings(value: Any) -> list[dict[str, Any]] | None:
    """A re-ranking setting or a list of them, each checked by ``RerankSpec.from_dict``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError("rerank must be a setting (a mapping) or a list of settings")
    from recforge.models.rerank import RerankSpec

    out = []
    for pos, doc in enumerate(value):
        try:
            RerankSpec.from_dict(doc)
        except ValueError as exc:
            raise ValueError(f"rerank setting {pos}: {exc}") from None
        out.append(dict(doc))
    return out


#: re-ranking settings (``{mmr: {lambda, on}, calibrate: {...}, rules: {...}}``), or a list
RerankSettings = Annotated[list[dict[str, Any]] | None, BeforeValidator(_rerank_settings)]


class ModelConfig(_Strict):
    """One model of the run: fixed hyperparameters and search spaces."""

    model: str
    """Registered short name of the model class (``"als"``)."""
    fixed: dict[str, Any] = Field(default_factory=dict)
    """Hyperparameters with a fixed value."""
    space: dict[str, SearchSpace] = Field(default_factory=dict)
    """Hyperparameters to tune."""
    n_trials: int | None = Field(None, ge=1)
    """Trial budget of this model (overrides ``tuning.n_trials``)."""
    budget: Duration = None
    """Wall-time budget of this model's search (overrides ``tuning.timeout``)."""
    rerank: RerankSettings = None
    """Re-ranking settings evaluated for this model (replace the run's ``rerank``)."""

    @property
    def tuned(self) -> bool:
        """Whether any hyperparameter is searched."""
        return bool(self.space)


def _models_before(value: Any) -> Any:
    """``{label: {param: value | space, model: name, search: default}}`` -> ModelConfig dicts."""
    if value is None:
        return {}
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = {str(v): {} for v in value}
    if not isinstance(value, Mapping):
        raise ValueError("models must be a mapping of model name -> parameters")
    out: dict[str, Any] = {}
    for label, params in value.items():
        params = {} if params is None else params
        if params == "default":
            params = {"search": "default"}
        if not isinstance(params, Mapping):
            raise ValueError(f"parameters of model {label!r} must be a mapping")
        params = dict(params)
        name = str(params.pop("model", label))
        search = params.pop("search", None)
        overrides = {
            key: params.pop(key) for key in ("n_trials", "budget", "rerank") if key in params
        }
        fixed: dict[str, Any] = {}
        space: dict[str, Any] = {}
        if search == "default":
            from recforge.pipeline.tuning import default_search_space

            space.update(default_search_space(name))
        elif search is not None:
            raise ValueError(f"search of model {label!r} must be 'default', got {search!r}")
        for key, val in params.items():
            if _is_space(val):
                space[key] = val
            else:
                space.pop(key, None)
                fixed[key] = val
        out[str(label)] = {"model": name, "fixed": fixed, "space": space, **overrides}
    return out


# --------------------------------------------------------------------------- tuning etc.
class TuningConfig(_Strict):
    """Hyperparameter search with Optuna."""

    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    """Optuna sampler (seeded with the run seed)."""
    n_trials: int | None = Field(20, ge=1)
    """Trials per tuned model; ``None`` for time-bounded search only."""
    timeout: Duration = None
    """Wall-time budget per tuned model (``"10m"``, ``"1h"`` or seconds)."""
    pruning: bool = True
    """Stop unpromising trials of iterative models early (median pruner)."""
    metric: str = "ndcg"
    """Metric to maximise on the validation data."""
    k: int = Field(10, ge=1)
    """Cut-off of the tuned metric."""
    cv_folds: int | None = Field(None, ge=2)
    """Use k-fold cross-validation on the training data instead of the validation split."""
    n_jobs: int = Field(1, ge=1)
    """Trials run in parallel threads."""

    @model_validator(mode="after")
    def _budget(self) -> TuningConfig:
        if self.n_trials is None and self.timeout is None:
            raise ValueError("give a budget: 'n_trials', 'timeout' or both")
        return self


class EvaluationConfig(_Strict):
    """Metrics reported on the test data."""

    metrics: list[str] = Field(
        default_factory=lambda: [
            "ndcg",
            "recall",
            "precision",
            "map",
            "coverage",
            "novelty",
            "popularity",
        ]
    )
    """Metric names (see :mod:`recforge.metrics`)."""
    k: list[int] = Field(default_factory=lambda: [5, 10, 20])
    """Cut-offs."""
    bootstrap: int = Field(1000, ge=0)
    """Bootstrap resamples for confidence intervals (0 disables)."""
    max_users: int | None = Field(None, ge=1)
    """Evaluate on a random sample of at most this many test users."""

    @field_validator("k")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one cut-off is needed")
        for k in value:
            if k < 1:
                raise ValueError(f"cut-offs must be positive, got {k}")
        return sorted(set(value))


class SignificanceConfig(_Strict):
    """Paired per-user tests of every model against the best one."""

    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    """Significance level after correction."""
    tests: list[Literal["t-test", "wilcoxon"]] = Field(
        default_factory=lambda: ["t-test", "wilcoxon"]  # type: ignore[arg-type]
    )
    """Tests to run."""
    correction: Literal["holm", "none"] = "holm"
    """Multiple-comparison correction."""
    metric: str | None = None
    """Metric compared (default: the tuning metric at its cut-off)."""


class OutputConfig(_Strict):
    """Where the run directory goes."""

    dir: Path = Path("runs/run")
    """Run directory, relative to the config file."""
    save_models: bool = True
    """Save fitted models in the safe format."""


class MlflowConfig(_Strict):
    """Optional MLflow logging (needs ``pip install 'recforge[mlflow]'``)."""

    enabled: bool = False
    """Log params, metrics and artifacts."""
    tracking_uri: str = "sqlite:///mlruns.db"
    """Tracking URI; a local SQLite store by default (MLflow 3 refuses plain file stores)."""
    experiment: str = "recforge"
    """Experiment name."""


class RunConfig(_Strict):
    """The whole ``recforge.yaml``."""

    name: str = "run"
    """Run name (shown in the report)."""
    seed: int = Field(42, ge=0)
    """Seed of the split, the samplers and the models that take ``rng``."""
    data: DataConfig
    """Data source."""
    prepare: list[dict[str, Any]] = Field(default_factory=list)
    """Preparation steps run in order (see :mod:`recforge.data.prepare`)."""
    split: SplitConfig = SplitConfig()
    """Train/validation/test split."""
    engine: EngineConfig = EngineConfig()
    """Where reading, preparation and splits run (``local`` or ``spark``)."""
    models: Annotated[dict[str, ModelConfig], BeforeValidator(_models_before)]
    """Models to compare, by label."""
    tuning: TuningConfig = TuningConfig()
    """Hyperparameter search."""
    evaluation: EvaluationConfig = EvaluationConfig()
    """Test metrics."""
    significance: SignificanceConfig = SignificanceConfig()
    """Statistical tests."""
    output: OutputConfig = OutputConfig()
    """Run directory."""
    registry: str | None = None
    """Model registry directory (relative to the config file): the winner is published
    there as a new version and promoted to active."""
    mlflow: MlflowConfig = MlflowConfig()
    """MLflow logging."""
    rerank: RerankSettings = None
    """Re-ranking settings (MMR diversity, calibration, business rules) evaluated for every
    model without its own: the report compares accuracy and diversity with and without
    each one (see :class:`recforge.models.rerank.RerankSpec`)."""
    retrieval: dict[str, Any] | None = None
    """Approximate-retrieval index built into the published winner (fields of
    :class:`recforge.retrieval.IndexSpec`, e.g. ``{kind: hnsw, ef_search: 128}``); models
    that do not score by inner products are published without one."""

    @field_validator("retrieval")
    @classmethod
    def _index_spec(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from recforge.retrieval import IndexSpec

            IndexSpec.from_dict(value)
        return value

    _base_dir: str = PrivateAttr(".")

    @field_validator("models")
    @classmethod
    def _some_models(cls, value: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        if not value:
            raise ValueError("list at least one model")
        return value

    @property
    def base_dir(self) -> Path:
        """Directory relative paths are resolved against (set by :func:`load_config`)."""
        return Path(self._base_dir)

    def resolve(self, path: Path) -> Path:
        """``path`` made absolute against :attr:`base_dir`."""
        return path if path.is_absolute() else (self.base_dir / path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the resolved configuration (search spaces expanded)."""
        return self.model_dump(mode="json")
