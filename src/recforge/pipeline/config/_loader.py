"""Loader of ``recforge.yaml``: YAML with line numbers, validation, messages that name the line.

The loader keeps the line of every YAML node, so a validation error names both the field path
and the line of the file it came from, and suggests the nearest valid key for a misspelt one::

    recforge.yaml:14: models.als.factor: ALS has no parameter 'factor'; did you mean 'factors'?

Model parameters are checked against each model's declared :class:`~recforge.models.Param`
constraints (structured values such as ``features`` or Blend ``members`` included), including
the bounds of search spaces, and the fixed values together by the model's own
:meth:`~recforge.models.Recommender.check_params` (e.g. ``min_k`` above ``max_k``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from recforge.exceptions import ConfigError
from recforge.pipeline.config._schema import ModelConfig, RunConfig, SearchSpace


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
    errors: list[str] = []
    for label, mc in cfg.models.items():
        base = ("models", label)
        cls = _model_class(mc, label, source, lines, errors)
        if cls is None:
            continue
        before = len(errors)
        for key, value in mc.fixed.items():
            at = _at(source, lines, (*base, key))
            spec = _known_param(cls, key, at, errors)
            if spec is not None:
                try:
                    spec.check(cls.__name__, key, value)
                except ConfigError as exc:
                    errors.append(f"{at}: {exc}")
        if len(errors) == before:
            errors.extend(_check_combination(cls, mc.fixed, _at(source, lines, base)))
        for key, space in mc.space.items():
            at = _at(source, lines, (*base, key))
            spec = _known_param(cls, key, at, errors)
            if spec is not None:
                errors.extend(_check_space(cls.__name__, key, spec, space, at))
    return errors


def _model_class(mc: ModelConfig, label: str, source: str, lines: _Lines, errors: list[str]) -> Any:
    """The model class of one ``models`` entry, or None with the reason added to ``errors``."""
    from recforge.models import MODELS, model_class

    base = ("models", label)
    try:
        return model_class(mc.model)
    except KeyError as exc:
        where_model = _where(
            source, lines, (*base, "model") if lines.line((*base, "model")) else base
        )
        known = ", ".join(MODELS)
        hint = _suggest(mc.model, list(MODELS))
        text = (
            str(exc.args[0])
            if "not available" in str(exc.args[0])
            else (f"unknown model {mc.model!r}{hint} (models: {known})")
        )
        errors.append(f"{where_model}: models.{label}: {text}")
        return None


def _known_param(cls: Any, key: str, at: str, errors: list[str]) -> Any:
    """The declared constraint of parameter ``key`` (None if undeclared or unknown: noted)."""
    names = cls.param_names()
    if key not in names:
        errors.append(f"{at}: {_no_parameter(cls.__name__, key, names)}")
        return None
    return cls.params.get(key)


def _check_combination(cls: Any, fixed: Mapping[str, Any], at: str) -> list[str]:
    """Errors of the fixed values together (e.g. ``min_k`` above ``max_k``), defaults filled in."""
    values = {name: spec.default for name, spec in cls.params.items()} | dict(fixed)
    try:
        cls.check_params(values)
    except ConfigError as exc:
        return [f"{at}: {exc}"]
    return []


def _check_space(owner: str, key: str, spec: Any, space: SearchSpace, at: str) -> list[str]:
    """Errors of one search space: its bounds or choices must satisfy the constraint."""
    probes: list[Any]
    if space.choices is not None:
        probes = list(space.choices)
    else:
        assert space.low is not None
        assert space.high is not None
        if space.type == "int":
            kind = float if spec.kind is float else int
            probes = [kind(space.low), kind(space.high)]
        elif spec.kind is int:
            return [
                f"{at}: the {key!r} parameter of {owner} is an int; use 'type: int' for its range"
            ]
        else:
            probes = [float(space.low), float(space.high)]
    for probe in probes:
        try:
            spec.check(owner, key, probe)
        except ConfigError as exc:
            return [f"{at}: search space value {probe!r} is out of bounds: {exc}"]
    return []


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
