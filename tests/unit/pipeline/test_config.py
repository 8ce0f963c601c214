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


@pytest.mark.parametrize(
    ("edits", "located", "fragments"),
    [
        pytest.param(
            {"  n_trials: 4": "  n_trails: 4"},
            {"n_trails": "tuning.n_trails"},
            ["did you mean 'n_trials'?"],
            id="misspelt-key",
        ),
        pytest.param(
            {"evaluation:": "evalution:"},
            {"evalution": "evalution: unknown key"},
            ["did you mean 'evaluation'?"],
            id="misspelt-section",
        ),
        pytest.param(
            {"  k: 5\n": "  k: five\n", "bootstrap: 200": "bootstrap: -3"},
            {"k: five": "tuning.k:", "bootstrap: -3": "evaluation.bootstrap:"},
            ["'five'", "greater than or equal to 0"],
            id="wrong-type-and-range",
        ),
        pytest.param(
            {"k: [3, 5, 10]": "k: [0, 5]", "  n_trials: 4": "  n_trials: 4\n  timeout: soon"},
            {
                "k: [0, 5]": "evaluation.k: cut-offs must be positive",
                "timeout: soon": "tuning.timeout:",
            },
            ["'15m'"],
            id="bad-cutoff-and-duration",
        ),
        pytest.param(
            {"path: ratings.csv": "path: nowhere.csv"},
            {"nowhere.csv": "data.path: file not found: nowhere.csv"},
            [],
            id="missing-data-file",
        ),
        pytest.param(
            {"  path: ratings.csv\n": ""},
            {"data:": "data: source 'csv' needs the field 'path'"},
            [],
            id="missing-required-field",
        ),
        pytest.param(
            {"  random: {}": "  randon: {}"},
            {"randon": "models.randon: unknown model 'randon'"},
            ["did you mean 'random'?"],
            id="unknown-model",
        ),
        pytest.param(
            {
                "  random: {}": "  random: {rng: -1}",
                "    reg_user: {type: float": "    reg_usr: {type: float",
                "reg_item: {type: float, low: 0.5, high: 20.0, log: true}": (
                    "reg_item: {type: float, low: -2.0, high: 20.0}"
                ),
            },
            {
                "rng: -1": "models.random.rng:",
                "reg_usr": "models.bias.reg_usr: BiasedBaseline has no ",
                "low: -2.0": "models.bias.reg_item: search space value -2.0",
            },
            [
                "The 'rng' parameter of Random must be an int in the range [0, inf). Got -1",
                "did you mean 'reg_user'?",
            ],
            id="model-param-constraints",
        ),
        pytest.param(
            {
                "  random: {}": (
                    "  random: {}\n  itemknn: {min_k: 5, max_k: 2}\n"
                    "  content: {features: [{kind: nope}]}"
                )
            },
            {
                "itemknn: {min_k": "models.itemknn: The 'min_k' parameter of ItemKNN (5)",
                "kind: nope": "models.content.features: The 'features' parameter of ContentBased",
            },
            ["feature block 0 has kind 'nope'"],
            id="structured-and-combined-params",
        ),
        pytest.param(
            {
                "    reg_item: {type: float, low: 0.5, high: 20.0, log: true}": (
                    "    reg_item: {type: float, low: 0.0, high: 20.0, log: true}"
                )
            },
            {"low: 0.0": "models.bias.reg_item:"},
            ["a log-scale range needs 'low' > 0"],
            id="log-range-from-zero",
        ),
        pytest.param(
            {"  random: {}": "  random: {rng: {type: float, low: 1, high: 2}}"},
            {},
            ["the 'rng' parameter of Random is an int; use 'type: int'"],
            id="float-range-for-int",
        ),
        pytest.param(
            {"  test_size: 0.25": "  test_sise: 0.25"},
            {"test_sise": "split.test_sise:"},
            ["did you mean 'test_size'?"],
            id="misspelt-split-option",
        ),
        pytest.param(
            {"method: user_random": "method: temporl"},
            {},
            ["unknown split method 'temporl'; did you mean 'temporal'?"],
            id="unknown-split-method",
        ),
        pytest.param(
            {"  n_trials: 4": "  n_trials: [4"},
            {},
            ["not valid YAML", "recforge.yaml:"],
            id="invalid-yaml",
        ),
    ],
)
def test_error_names_line_field_and_fix(
    write_config: Callable[[str], Path],
    base_config: str,
    edits: dict[str, str],
    located: dict[str, str],
    fragments: list[str],
) -> None:
    """Each edit of the valid config fails with messages ``recforge.yaml:<line>: <field>...``.

    ``located`` maps a text on the offending line to what must follow its location.
    """
    text = base_config
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    msg = _error(write_config, text)
    for needle, rest in located.items():
        assert f"recforge.yaml:{_line_of(text, needle)}: {rest}" in msg
    for fragment in fragments:
        assert fragment in msg


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
