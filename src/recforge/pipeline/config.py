"""Schema of ``recforge.yaml`` and its loader.

The loader keeps the line of every YAML node, so a validation error names both the field path
and the line of the file it came from, and suggests the nearest valid key for a misspelt one::

    recforge.yaml:14: models.als.factor: ALS has no parameter 'factor'; did you mean 'factors'?

Model parameters are checked against each model's declared :class:`~recforge.models.Param`
constraints, including the bounds of search spaces.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from recforge.exceptions import ConfigError

__all__ = [
    "DataConfig",
    "EvaluationConfig",
    "MlflowConfig",
    "ModelConfig",
    "OutputConfig",
    "RunConfig",
    "SearchSpace",
    "SignificanceConfig",
    "SplitConfig",
    "TuningConfig",
    "load_config",
    "parse_duration",
    "validate_config",
]

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

    source: Literal["csv", "parquet", "sql", "builtin"] = "csv"
    """Kind of source."""
    path: Path | None = None
    """File for ``csv`` / ``parquet``, relative to the config file."""
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
        need = {"csv": ["path"], "parquet": ["path"], "sql": ["url", "query"], "builtin": ["name"]}
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
        overrides = {key: params.pop(key) for key in ("n_trials", "budget") if key in params}
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


# --------------------------------------------------------------------------- loading
class _Lines:
    """Line numbers (1-based) of the nodes of a composed YAML document, by field path."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        self.key_lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, val in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                self.key_lines[(*path, name)] = key.start_mark.line + 1
                self._walk(val, (*path, name))
        elif isinstance(node, yaml.SequenceNode):
            for i, val in enumerate(node.value):
                self._walk(val, (*path, i))

    def line(self, path: Sequence[Any]) -> int | None:
        path = tuple(path)
        while path:
            if path in self.key_lines:
                return self.key_lines[path]
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _yaml_path(loc: Sequence[Any]) -> tuple[Any, ...]:
    """Map a pydantic error location back to the path in the YAML file."""
    out: list[Any] = []
    loc = list(loc)
    i = 0
    while i < len(loc):
        part = loc[i]
        if out[:1] == ["models"] and len(out) == 2 and part in ("fixed", "space"):
            i += 1  # ModelConfig regroups parameters; YAML has them flat
            continue
        if isinstance(part, str) and part.startswith("function-"):
            i += 1
            continue
        out.append(part)
        i += 1
    return tuple(out)


def _fields_at(path: Sequence[Any]) -> list[str]:
    """Valid key names at a schema location (for 'did you mean')."""
    model: Any = RunConfig
    for part in path:
        if model is None or isinstance(part, int):
            return []
        if model is RunConfig and part == "models":
            return []
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        model = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)),
            None,
        )
        if model is not None and not hasattr(model, "model_fields"):
            model = None
    return list(getattr(model, "model_fields", {}))


def _suggest(name: str, options: Sequence[str]) -> str:
    near = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.5)
    return f"; did you mean {near[0]!r}?" if near else ""


def _where(source: str, lines: _Lines, path: Sequence[Any]) -> str:
    line = lines.line(path)
    return f"{source}:{line}" if line is not None else source


def _dotted(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _at(source: str, lines: _Lines, path: Sequence[Any]) -> str:
    """``file:line: dotted.path``, the start of an error message about ``path``."""
    return f"{_where(source, lines, path)}: {_dotted(path)}"


def _format_errors(exc: ValidationError, source: str, lines: _Lines) -> str:
    messages = []
    for err in exc.errors():
        path = _yaml_path(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            parent, key = path[:-1], path[-1]
            hint = _suggest(str(key), _fields_at(parent))
            msg = f"unknown key {key!r}{hint}"
        elif kind == "missing":
            msg = "this field is required"
            path_line = _where(source, lines, path[:-1])
            messages.append(f"{path_line}: {_dotted(path)}: {msg}")
            continue
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if (
                "input" in err
                and kind not in ("value_error",)
                and not isinstance(err["input"], Mapping | list)
            ):
                msg += f" (got {err['input']!r})"
        messages.append(f"{_at(source, lines, path)}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(messages)


def _no_parameter(owner: str, key: str, names: list[str]) -> str:
    """Message for a parameter ``key`` that the model class ``owner`` does not take."""
    return (
        f"{owner} has no parameter {key!r}{_suggest(key, names)} (parameters: {', '.join(names)})"
    )


def _check_models(cfg: RunConfig, source: str, lines: _Lines) -> list[str]:
    from recforge.models import MODELS, model_class

    errors: list[str] = []
    for label, mc in cfg.models.items():
        base = ("models", label)
        where_model = _where(
            source, lines, (*base, "model") if lines.line((*base, "model")) else base
        )
        try:
            cls = model_class(mc.model)
        except KeyError as exc:
            known = ", ".join(MODELS)
            hint = _suggest(mc.model, list(MODELS))
            text = (
                str(exc.args[0])
                if "not available" in str(exc.args[0])
                else (f"unknown model {mc.model!r}{hint} (models: {known})")
            )
            errors.append(f"{where_model}: models.{label}: {text}")
            continue
        names = cls.param_names()
        owner = cls.__name__
        for key, value in mc.fixed.items():
            path = (*base, key)
            if key not in names:
                errors.append(f"{_at(source, lines, path)}: {_no_parameter(owner, key, names)}")
                continue
            spec = cls.params.get(key)
            if spec is not None:
                try:
                    spec.check(owner, key, value)
                except ConfigError as exc:
                    errors.append(f"{_at(source, lines, path)}: {exc}")
        for key, space in mc.space.items():
            path = (*base, key)
            if key not in names:
                errors.append(f"{_at(source, lines, path)}: {_no_parameter(owner, key, names)}")
                continue
            spec = cls.params.get(key)
            if spec is None:
                continue
            probes: list[Any]
            if space.choices is not None:
                probes = list(space.choices)
            else:
                assert space.low is not None
                assert space.high is not None
                if space.type == "int":
                    if spec.kind is float:
                        probes = [float(space.low), float(space.high)]
                    else:
                        probes = [int(space.low), int(space.high)]
                else:
                    if spec.kind is int:
                        errors.append(
                            f"{_at(source, lines, path)}: the {key!r} "
                            f"parameter of {owner} is an int; use 'type: int' for its range"
                        )
                        continue
                    probes = [float(space.low), float(space.high)]
            for probe in probes:
                try:
                    spec.check(owner, key, probe)
                except ConfigError as exc:
                    errors.append(
                        f"{_at(source, lines, path)}: search space "
                        f"value {probe!r} is out of bounds: {exc}"
                    )
                    break
    return errors


def _check_split(cfg: RunConfig, source: str, lines: _Lines) -> list[str]:
    """Check the split method and its arguments without running it."""
    from recforge import split as splitting

    raw = cfg.split.method
    try:
        _, allowed = splitting.split_options(raw)
    except ConfigError as exc:
        return [f"{_where(source, lines, ('split', 'method'))}: split.method: {exc}"]
    errors = []
    for key in cfg.split.model_extra or {}:
        if key not in allowed:
            errors.append(
                f"{_where(source, lines, ('split', key))}: split.{key}: split method {raw!r} has "
                f"no option {key!r}{_suggest(key, allowed)} (options: {', '.join(allowed)})"
            )
    return errors


def _check_files(cfg: RunConfig, source: str, lines: _Lines) -> list[str]:
    errors = []
    if cfg.data.source == "builtin" and cfg.data.name is not None:
        from recforge.data.datasets import REGISTRY

        if cfg.data.name not in REGISTRY:
            names = list(REGISTRY)
            errors.append(
                f"{_where(source, lines, ('data', 'name'))}: data.name: unknown data set "
                f"{cfg.data.name!r}{_suggest(cfg.data.name, names)} (data sets: {', '.join(names)})"
            )
    files: list[tuple[tuple[Any, ...], Path | None]] = [(("data", "path"), cfg.data.path)]
    for what in ("item_attributes", "user_attributes"):
        attr = getattr(cfg.data, what)
        files.append((("data", what, "path"), attr.path if attr is not None else None))
    for path, file in files:
        if file is None:
            continue
        full = cfg.resolve(file)
        if not full.is_file():
            errors.append(
                f"{_at(source, lines, path)}: file not found: {file} (looked in {full.parent})"
            )
    return errors


def validate_config(
    raw: Mapping[str, Any],
    *,
    source: str = "<config>",
    lines: _Lines | None = None,
    base_dir: Path | None = None,
    check_files: bool = True,
) -> RunConfig:
    """Validate a configuration dict (as read from ``recforge.yaml``).

    Parameters
    ----------
    raw
        Parsed YAML.
    source
        Name used in messages (the file name).
    lines
        Line map of the YAML document (internal; :func:`load_config` passes it).
    base_dir
        Directory relative paths are resolved against.
    check_files
        Check that data files exist.

    Raises
    ------
    ConfigError
        With one line per problem: ``file:line: field.path: message``.
    """
    lines = lines or _Lines(None)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the configuration must be a YAML mapping of keys to values")
    try:
        cfg = RunConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, lines)) from None
    except ConfigError as exc:  # raised while expanding default search spaces
        raise ConfigError(f"{source}: {exc}") from None
    cfg._base_dir = str(base_dir or Path("."))
    errors = _check_models(cfg, source, lines) + _check_split(cfg, source, lines)
    if check_files:
        errors += _check_files(cfg, source, lines)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    return cfg


def load_config(path: str | Path, *, check_files: bool = True) -> RunConfig:
    """Read and validate ``recforge.yaml``.

    Parameters
    ----------
    path
        The YAML file.
    check_files
        Check that the data files it names exist.

    Returns
    -------
    RunConfig

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or fails validation; messages give the
        line number and the field path.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty")
    return validate_config(
        raw,
        source=str(path),
        lines=_Lines(node),
        base_dir=path.resolve().parent,
        check_files=check_files,
    )


# --------------------------------------------------------------------------- recforge init
_ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "user": (
        "userid",
        "user",
        "uid",
        "customerid",
        "customer",
        "visitorid",
        "memberid",
        "clientid",
        "accountid",
        "reviewerid",
        "sessionid",
    ),
    "item": (
        "itemid",
        "item",
        "iid",
        "movieid",
        "movie",
        "productid",
        "product",
        "sku",
        "articleid",
        "trackid",
        "songid",
        "bookid",
        "asin",
        "isbn",
        "contentid",
    ),
    "value": (
        "rating",
        "ratings",
        "score",
        "value",
        "stars",
        "count",
        "clicks",
        "plays",
        "playcount",
        "quantity",
        "weight",
        "purchases",
        "views",
    ),
    "time": (
        "timestamp",
        "time",
        "ts",
        "datetime",
        "date",
        "eventtime",
        "createdat",
        "unixtime",
        "unixreviewtime",
    ),
}
_ROLE_HINTS = {
    "user": ("user", "customer", "visitor"),
    "item": ("item", "movie", "product"),
    "value": ("rating", "score"),
    "time": ("time", "date"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _epoch_like(col: Any) -> bool:
    import pandas as pd

    if not pd.api.types.is_integer_dtype(col) and not pd.api.types.is_float_dtype(col):
        return False
    vals = col.dropna()
    return bool(len(vals)) and bool(((vals > 3e8) & (vals < 5e9)).mean() > 0.99)


def guess_columns(frame: Any) -> tuple[dict[str, str | None], list[str]]:
    """Guess the user, item, value and time columns of an interaction table.

    Names are matched first (``userId``, ``movie_id``, ``rating``, ``timestamp``, ...), then
    dtypes (datetimes or epoch-second integers for time, a numeric column with few distinct
    values for ratings, the first remaining columns for ids).

    Returns
    -------
    columns : dict
        ``{"user": ..., "item": ..., "value": ... or None, "time": ... or None}``.
    notes : list of str
        One sentence per guess saying how it was made.

    Raises
    ------
    ConfigError
        If no user or item column can be told apart.
    """
    import pandas as pd

    cols = [str(c) for c in frame.columns]
    taken: set[str] = set()
    found: dict[str, str | None] = {}
    notes: list[str] = []
    for role in ("user", "item", "time", "value"):
        names = _ROLE_NAMES[role]
        exact = [c for c in cols if c not in taken and _norm(c) in names]
        loose = [
            c for c in cols if c not in taken and any(h in _norm(c) for h in _ROLE_HINTS[role])
        ]
        pick: str | None = (exact or loose or [None])[0]  # type: ignore[list-item]
        if pick is not None:
            found[role] = pick
            taken.add(pick)
            notes.append(f"{role}: column {pick!r} (by its name)")
    if "time" not in found:
        for c in cols:
            if c in taken:
                continue
            col = frame[c]
            if pd.api.types.is_datetime64_any_dtype(col) or _epoch_like(col):
                found["time"] = c
                taken.add(c)
                notes.append(f"time: column {c!r} (its values look like dates)")
                break
    for role in ("user", "item"):
        if role in found:
            continue
        rest = [c for c in cols if c not in taken]
        if not rest:
            raise ConfigError(
                f"cannot tell which column holds the {role} ids (columns: {', '.join(cols)}); "
                f"write data.columns.{role} in the config yourself"
            )
        found[role] = rest[0]
        taken.add(rest[0])
        notes.append(f"{role}: column {rest[0]!r} (first unused column; check it)")
    if "value" not in found:
        for c in cols:
            col = frame[c]
            if c in taken or not pd.api.types.is_numeric_dtype(col):
                continue
            if pd.api.types.is_bool_dtype(col) or col.nunique() > 50:
                continue
            found["value"] = c
            taken.add(c)
            notes.append(f"value: column {c!r} (numeric with few distinct values)")
            break
    for role in ("value", "time"):
        if role not in found:
            found[role] = None
            what = (
                "implicit feedback (every interaction counts 1)"
                if role == "value"
                else ("no timestamps (random split)")
            )
            notes.append(f"{role}: none found, so {what}")
    return found, notes


def starter_config(
    data: str | Path, *, config_dir: str | Path | None = None
) -> tuple[str, list[str]]:
    """A commented ``recforge.yaml`` for a CSV or Parquet interaction file.

    Parameters
    ----------
    data
        The interaction file.
    config_dir
        Directory the config will be written to (the data path is written relative to it).

    Returns
    -------
    text : str
        YAML with comments.
    notes : list of str
        What was guessed and how.

    Raises
    ------
    ConfigError
        If the file is missing or of an unsupported type.
    """
    import os

    import pandas as pd

    path = Path(data)
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith(".parquet") or suffix.endswith(".pq"):
        source = "parquet"
        frame = pd.read_parquet(path).head(20_000)
    elif suffix.endswith((".csv", ".tsv", ".csv.gz", ".txt")):
        source = "csv"
        frame = pd.read_csv(
            path,
            nrows=20_000,
            sep=None if suffix.endswith(".txt") else ",",
            engine="python" if suffix.endswith(".txt") else "c",
        )
    else:
        raise ConfigError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    cols, notes = guess_columns(frame)
    base = Path(config_dir) if config_dir is not None else Path(".")
    rel = Path(os.path.relpath(path.resolve(), base.resolve()))
    explicit = cols["value"] is not None
    if cols["time"] is not None:
        split = (
            "split:                      # newest 20% of each user's items are the test set\n"
            "  method: temporal\n  per_user_last: 0.2\n  valid_size: 0.1\n"
        )
    else:
        split = (
            "split:                      # 20% of each user's items are the test set\n"
            "  method: user_random\n  test_size: 0.2\n  valid_size: 0.1\n"
        )

    def opt(name: str | None) -> str:
        return "null" if name is None else yaml.safe_dump(name).splitlines()[0]

    feedback = "explicit ratings" if explicit else "implicit feedback"
    rating_model = "  svd: {search: default}      # rating model (matrix factorisation)\n"
    text = (
        f"# recforge run configuration, generated by 'recforge init' from {path.name}.\n"
        f"# Guessed columns: {'; '.join(notes)}.\n"
        "# Check them, then run:  recforge run recforge.yaml\n"
        f"name: {_norm(path.stem) or 'run'}\n"
        "seed: 42\n\n"
        "data:\n"
        f"  source: {source}\n"
        f"  path: {opt(str(rel))}\n"
        "  columns:\n"
        f"    user: {opt(cols['user'])}\n"
        f"    item: {opt(cols['item'])}\n"
        f"    value: {opt(cols['value'])}        # {feedback}; null = implicit\n"
        f"    time: {opt(cols['time'])}\n"
        "  # item_attributes: {path: items.csv, key: item_id}\n\n"
        "prepare:                     # run in order; see recforge.data.prepare\n"
        "  - {step: deduplicate, policy: last}\n\n"
        f"{split}\n"
        "models:                      # {search: default} tunes the model's default space;\n"
        "  popular: {}                # or values / {type: int, low: 1, high: 9, log: true}\n"
        "  itemknn: {search: default}\n"
        "  ease: {search: default}\n"
        "  als: {search: default}\n"
        f"{rating_model if explicit else ''}\n"
        "tuning:\n"
        "  sampler: tpe\n"
        "  n_trials: 20               # per tuned model\n"
        "  timeout: 5m                # per tuned model\n"
        "  pruning: true\n"
        "  metric: ndcg\n"
        "  k: 10\n\n"
        "evaluation:\n"
        "  metrics: [ndcg, recall, precision, map, coverage, novelty, popularity]\n"
        "  k: [5, 10, 20]\n\n"
        "significance:\n"
        "  alpha: 0.05\n"
        "  tests: [t-test, wilcoxon]\n\n"
        "output:\n"
        f"  dir: runs/{_norm(path.stem) or 'run'}\n"
    )
    return text, notes
