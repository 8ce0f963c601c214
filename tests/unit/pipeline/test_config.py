"""recforge.yaml validation: every message names the field, the YAML line and a fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from recforge.exceptions import ConfigError
from recforge.pipeline.config import (
    guess_columns,
    load_config,
    parse_duration,
    starter_config,
    validate_config,
)


def _error(write: Callable[[str], Path], text: str) -> str:
    path = write(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_valid_config_loads_and_expands(
    write_config: Callable[[str], Path], base_config: str
) -> None:
    cfg = load_config(write_config())
    assert list(cfg.models) == ["popular", "random", "bias"]
    assert cfg.models["bias"].tuned
    assert cfg.models["bias"].space["reg_user"].log is True
    assert not cfg.models["popular"].tuned
    assert cfg.split.to_spec() == {"method": "user_random", "test_size": 0.25, "valid_size": 0.15}
    assert cfg.evaluation.k == [3, 5, 10]
    assert cfg.resolve(cfg.output.dir).parent.parent == write_config().parent


def test_misspelt_key_names_line_and_suggestion(
    write_config: Callable[[str], Path], base_config: str
) -> None:
    text = base_config.replace("  n_trials: 4", "  n_trails: 4")
    msg = _error(write_config, text)
    assert f"recforge.yaml:{_line_of(text, 'n_trails')}: tuning.n_trails" in msg
    assert "did you mean 'n_trials'?" in msg


def test_misspelt_top_level_section(write_config: Callable[[str], Path], base_config: str) -> None:
    text = base_config.replace("evaluation:", "evalution:")
    msg = _error(write_config, text)
    assert f":{_line_of(text, 'evalution')}: evalution: unknown key" in msg
    assert "did you mean 'evaluation'?" in msg


def test_wrong_type_and_range(write_config: Callable[[str], Path], base_config: str) -> None:
    text = base_config.replace("  k: 5\n", "  k: five\n").replace("bootstrap: 200", "bootstrap: -3")
    msg = _error(write_config, text)
    assert f":{_line_of(text, 'k: five')}: tuning.k:" in msg
    assert "'five'" in msg
    assert f":{_line_of(text, 'bootstrap: -3')}: evaluation.bootstrap:" in msg
    assert "greater than or equal to 0" in msg


def test_bad_cutoff_and_duration(write_config: Callable[[str], Path], base_config: str) -> None:
    text = base_config.replace("k: [3, 5, 10]", "k: [0, 5]").replace(
        "  n_trials: 4", "  n_trials: 4\n  timeout: soon"
    )
    msg = _error(write_config, text)
    assert f":{_line_of(text, 'k: [0, 5]')}: evaluation.k: cut-offs must be positive" in msg
    assert f":{_line_of(text, 'timeout: soon')}: tuning.timeout:" in msg
    assert "'15m'" in msg


def test_missing_data_file(write_config: Callable[[str], Path], base_config: str) -> None:
    text = base_config.replace("path: ratings.csv", "path: nowhere.csv")
    msg = _error(write_config, text)
    assert f":{_line_of(text, 'nowhere.csv')}: data.path: file not found: nowhere.csv" in msg


def test_missing_required_field(write_config: Callable[[str], Path], base_config: str) -> None:
    text = base_config.replace("  path: ratings.csv\n", "")
    msg = _error(write_config, text)
    assert "data: source 'csv' needs the field 'path'" in msg
    assert f":{_line_of(text, 'data:')}:" in msg


def test_unknown_model_suggests_nearest(
    write_config: Callable[[str], Path], base_config: str
) -> None:
    text = base_config.replace("  random: {}", "  randon: {}")
    msg = _error(write_config, text)
    assert f":{_line_of(text, 'randon')}: models.randon: unknown model 'randon'" in msg
    assert "did you mean 'random'?" in msg


def test_model_param_checked_against_param_constraints(
    write_config: Callable[[str], Path], base_config: str
) -> None:
    text = (
        base_config.replace("  random: {}", "  random: {rng: -1}")
        .replace("    reg_user: {type: float", "    reg_usr: {type: float")
        .replace(
            "reg_item: {type: float, low: 0.5, high: 20.0, log: true}",
            "reg_item: {type: float, low: -2.0, high: 20.0}",
        )
    )
    msg = _error(write_config, text)
    assert f":{_line_of(text, 'rng: -1')}: models.random.rng:" in msg
    assert "The 'rng' parameter of Random must be an int in the range [0, inf). Got -1" in msg
    assert f":{_line_of(text, 'reg_usr')}: models.bias.reg_usr: BiasedBaseline has no " in msg
    assert "did you mean 'reg_user'?" in msg
    assert f":{_line_of(text, 'low: -2.0')}: models.bias.reg_item: search space value -2.0" in msg


def test_search_space_shape_errors(write_config: Callable[[str], Path], base_config: str) -> None:
    text = base_config.replace(
        "    reg_item: {type: float, low: 0.5, high: 20.0, log: true}",
        "    reg_item: {type: float, low: 0.0, high: 20.0, log: true}",
    )
    msg = _error(write_config, text)
    assert f":{_line_of(text, 'low: 0.0')}: models.bias.reg_item:" in msg
    assert "a log-scale range needs 'low' > 0" in msg
    text = base_config.replace("  random: {}", "  random: {rng: {type: float, low: 1, high: 2}}")
    msg = _error(write_config, text)
    assert "the 'rng' parameter of Random is an int; use 'type: int'" in msg


def test_split_options_checked(write_config: Callable[[str], Path], base_config: str) -> None:
    text = base_config.replace("  test_size: 0.25", "  test_sise: 0.25")
    msg = _error(write_config, text)
    assert f":{_line_of(text, 'test_sise')}: split.test_sise:" in msg
    assert "did you mean 'test_size'?" in msg
    text = base_config.replace("method: user_random", "method: temporl")
    msg = _error(write_config, text)
    assert "unknown split method 'temporl'; did you mean 'temporal'?" in msg


def test_invalid_yaml_reports_line(write_config: Callable[[str], Path], base_config: str) -> None:
    text = base_config.replace("  n_trials: 4", "  n_trials: [4")
    msg = _error(write_config, text)
    assert "not valid YAML" in msg
    assert "recforge.yaml:" in msg


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "absent.yaml")


def test_search_default_uses_declared_params(
    write_config: Callable[[str], Path], base_config: str
) -> None:
    text = base_config.replace(
        "  bias:\n    reg_user: {type: float, low: 0.5, high: 20.0, log: true}\n"
        "    reg_item: {type: float, low: 0.5, high: 20.0, log: true}\n",
        "  bias: {search: default, reg_item: 3.0, n_trials: 2, budget: 30s}\n",
    )
    cfg = load_config(write_config(text))
    bias = cfg.models["bias"]
    assert set(bias.space) == {"reg_user"}  # the fixed value wins over the default space
    assert bias.fixed == {"reg_item": 3.0}
    assert bias.n_trials == 2
    assert bias.budget == 30.0


def test_budget_needed() -> None:
    raw = {
        "data": {"source": "builtin", "name": "x"},
        "models": {"popular": {}},
        "tuning": {"n_trials": None},
    }
    with pytest.raises(ConfigError, match="give a budget"):
        validate_config(raw, check_files=False)


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0), (None, None)]
)
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-5m", 0, True])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_guess_columns_by_name_and_dtype() -> None:
    frame = pd.DataFrame(
        {
            "customer": ["a", "b"],
            "sku": [1, 2],
            "stars": [4.0, 5.0],
            "when": [1_600_000_000, 1_600_000_100],
        }
    )
    cols, notes = guess_columns(frame)
    assert cols == {"user": "customer", "item": "sku", "value": "stars", "time": "when"}
    assert any("'when'" in n and "look like dates" in n for n in notes)
    implicit, notes = guess_columns(pd.DataFrame({"uid": [1], "product_id": [2]}))
    assert implicit["value"] is None
    assert implicit["time"] is None
    assert any("implicit" in n for n in notes)


def test_starter_config_is_valid_and_says_what_it_guessed(ratings_csv: Path) -> None:
    text, notes = starter_config(ratings_csv, config_dir=ratings_csv.parent)
    assert "user: column 'userId' (by its name)" in notes
    assert "# Guessed columns:" in text
    path = ratings_csv.parent / "starter.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = load_config(path)
    assert cfg.data.columns.value == "rating"
    assert cfg.split.method == "temporal"
    assert "svd" in cfg.models  # explicit ratings get a rating model
    assert cfg.models["als"].tuned


def test_unknown_builtin_dataset(tmp_path: Path) -> None:
    path = tmp_path / "recforge.yaml"
    path.write_text(
        "data:\n  source: builtin\n  name: movielens-smal\nmodels: {popular: {}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "recforge.yaml:3: data.name: unknown data set 'movielens-smal'" in str(info.value)
    assert "did you mean 'movielens-small'?" in str(info.value)
