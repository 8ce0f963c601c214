"""ItemFeatures: blocks, normalisation, alignment with item codes, errors, state round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recforge.data import Dataset, IdIndex
from recforge.exceptions import ConfigError, DataError, MissingDependencyError, NotFittedError
from recforge.features import ItemFeatures, l2_normalize_rows


def _attrs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": ["Toy Story", "Heat", "A love story", None],
            "genres": ["Animation|Comedy", "Action|Crime", "Comedy|Romance", None],
            "tags": [["pixar", "fun"], ["heist"], [], ["fun"]],
            "year": [1995, 1995, 2001, np.nan],
        },
        index=[10, 20, 30, 40],
    )


def test_categories_multi_hot_by_hand() -> None:
    f = ItemFeatures().categories("genres", sep="|")
    x = f.fit_transform(_attrs()).toarray()
    assert f.feature_names_ == [
        "genres=Action",
        "genres=Animation",
        "genres=Comedy",
        "genres=Crime",
        "genres=Romance",
    ]
    h = 1 / np.sqrt(2)
    expected = np.array(
        [[0, h, h, 0, 0], [h, 0, 0, h, 0], [0, 0, h, 0, h], [0, 0, 0, 0, 0]], dtype=np.float32
    )
    np.testing.assert_allclose(x, expected, rtol=1e-6)


def test_categories_idf_weights_rare_labels_more() -> None:
    f = ItemFeatures().categories("genres", idf=True)
    x = f.fit_transform(_attrs()).toarray()
    # item 10: Animation (df=1) vs Comedy (df=2), n=4: idf = log(5/2)+1, log(5/3)+1
    a, c = np.log(5 / 2) + 1, np.log(5 / 3) + 1
    norm = np.hypot(a, c)
    np.testing.assert_allclose(x[0, [1, 2]], [a / norm, c / norm], rtol=1e-6)


def test_list_valued_and_lowercase_and_ignore() -> None:
    attrs = _attrs()
    attrs["tags"] = [["Pixar", "FUN"], ["heist"], [], ["fun"]]
    f = ItemFeatures().categories("tags", lowercase=True, ignore=["heist"])
    x = f.fit_transform(attrs)
    assert f.feature_names_ == ["tags=fun", "tags=pixar"]
    assert x[[1]].nnz == 0
    assert x[[3]].toarray()[0].tolist() == [1.0, 0.0]


def test_text_tfidf_matches_sklearn() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    attrs = _attrs()
    f = ItemFeatures().text("title")
    x = f.fit_transform(attrs).toarray()
    ref = TfidfVectorizer(stop_words="english").fit(attrs["title"].fillna(""))
    assert f.feature_names_ == [f"title:{t}" for t in ref.get_feature_names_out()]
    np.testing.assert_allclose(x, ref.transform(attrs["title"].fillna("")).toarray(), rtol=1e-5)


def test_numeric_bins_and_scaling() -> None:
    years = pd.DataFrame({"year": [1990, 1995, 2001, np.nan]}, index=[1, 2, 3, 4])
    f = ItemFeatures().numeric("year", scale="bins", n_bins=2)
    x = f.fit_transform(years).toarray()
    assert f.feature_names_ == ["year in [1990, 1995)", "year in [1995, 2001]"]
    assert x.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    # repeated values give fewer bins
    assert ItemFeatures().numeric("year", n_bins=2).fit(_attrs()).n_features_ == 1
    s = ItemFeatures().numeric("year", scale="minmax")
    np.testing.assert_allclose(s.fit_transform(_attrs()).toarray()[:, 0], [0, 0, 1, 0])
    z = ItemFeatures().numeric("year", scale="standard", weight=4.0).categories("genres")
    out = z.fit_transform(_attrs()).toarray()
    # (1995 - mean) / std = -1/sqrt(2); scaled by sqrt(4) = 2 before the row normalisation
    v = -2 / np.sqrt(2)
    np.testing.assert_allclose(out[0, 0], v / np.sqrt(v * v + 1), rtol=1e-5)


def test_block_weights_shape_cosine() -> None:
    attrs = pd.DataFrame({"a": ["x", "x"], "b": ["p", "q"]}, index=[1, 2])
    for wa, wb in [(1.0, 1.0), (3.0, 1.0)]:
        x = (
            ItemFeatures()
            .categories("a", weight=wa)
            .categories("b", weight=wb)
            .fit_transform(attrs)
        )
        cos = float((x[[0]] @ x[[1]].T).toarray()[0, 0])
        assert cos == pytest.approx(wa / (wa + wb), rel=1e-6)


def test_rows_unit_norm_or_empty() -> None:
    f = ItemFeatures().text("title").categories("genres").numeric("year")
    x = f.fit_transform(_attrs())
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, [1, 1, 1, 0], rtol=1e-5)  # item 40: no attribute used
    assert x.dtype == np.float32
    assert f.n_features_ == x.shape[1] == len(f.feature_names_)


def test_transform_new_items_uses_fitted_vocabulary() -> None:
    f = ItemFeatures().categories("genres").fit(_attrs())
    new = pd.DataFrame({"genres": ["Comedy|Western"]}, index=[99])
    x = f.transform(new).toarray()
    assert x.shape == (1, 5)
    assert x[0, f.feature_names_.index("genres=Comedy")] == pytest.approx(1.0)


def test_alignment_with_dataset_codes() -> None:
    frame = pd.DataFrame({"user": [1, 1, 2], "item": [30, 99, 10]})
    ds = Dataset.from_frame(frame, item_attributes=_attrs())
    f = ItemFeatures().categories("genres")
    x = f.fit_dataset(ds)
    assert x.shape == (ds.n_items, 5)
    code99 = int(ds.items.codes([99])[0])
    assert x[[code99]].nnz == 0  # no attributes: empty row
    code30 = int(ds.items.codes([30])[0])
    assert set(np.asarray(f.feature_names_)[x[[code30]].indices]) == {
        "genres=Comedy",
        "genres=Romance",
    }
    aligned = f.transform_index(_attrs(), IdIndex([40, 10]))
    assert aligned.shape[0] == 2
    assert aligned[[1]].nnz == 2


def test_unknown_column_lists_available() -> None:
    f = ItemFeatures().categories("genre")
    with pytest.raises(DataError, match=r"missing column 'genre' \(columns: title, genres"):
        f.fit(_attrs())


def test_empty_text_column() -> None:
    attrs = pd.DataFrame({"title": [None, "", np.nan]}, index=[1, 2, 3])
    with pytest.raises(DataError, match="text column 'title' is empty"):
        ItemFeatures().text("title").fit(attrs)
    only_stop = pd.DataFrame({"title": ["the a", "of the"]}, index=[1, 2])
    with pytest.raises(DataError, match="empty vocabulary"):
        ItemFeatures().text("title").fit(only_stop)


def test_wrong_types_named() -> None:
    attrs = pd.DataFrame({"year": ["1999", "soon"]}, index=[1, 2])
    with pytest.raises(DataError, match=r"numeric column 'year' .* 'soon' at item 2"):
        ItemFeatures().numeric("year").fit(attrs)
    bad = pd.DataFrame({"genres": [3.5, "a"]}, index=[1, 2])
    with pytest.raises(DataError, match=r"column 'genres' .* at item 1"):
        ItemFeatures().categories("genres").fit(bad)
    text = pd.DataFrame({"title": [{"a": 1}]}, index=[7])
    with pytest.raises(DataError, match="text column 'title' has a non-text value"):
        ItemFeatures().text("title").fit(text)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="scale of numeric column 'year'"):
        ItemFeatures().numeric("year", scale="log")
    with pytest.raises(ConfigError, match="weight of column 'g'"):
        ItemFeatures().categories("g", weight=0.0)
    with pytest.raises(ConfigError, match="already declared"):
        ItemFeatures().categories("g").categories("g")
    with pytest.raises(ConfigError, match="kind 'image'"):
        ItemFeatures.from_config([{"kind": "image", "column": "poster"}])
    with pytest.raises(ConfigError, match=r"feature block 0 \(categories\)"):
        ItemFeatures.from_config([{"kind": "categories", "column": "g", "sepp": ","}])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        ItemFeatures().categories("g").transform(_attrs())


def test_config_and_state_round_trip_without_pickle(tmp_path: object) -> None:
    f = (
        ItemFeatures()
        .text("title", ngram_range=(1, 2))
        .categories("genres", idf=True)
        .categories("tags")
        .numeric("year", n_bins=3)
    )
    x = f.fit_transform(_attrs())
    config = json.loads(json.dumps(f.to_config()))
    state = f.get_state(prefix="f.")
    assert all(arr.dtype != object for arr in state.values())
    g = ItemFeatures.from_config(config).set_state(state, prefix="f.")
    assert g.feature_names_ == f.feature_names_
    np.testing.assert_allclose(g.transform(_attrs()).toarray(), x.toarray(), rtol=1e-6)


def test_auto_declaration() -> None:
    f = ItemFeatures.auto(_attrs())
    kinds = {c["column"]: c["kind"] for c in f.to_config()}
    assert kinds == {
        "title": "text",
        "genres": "categories",
        "tags": "categories",
        "year": "numeric",
    }
    with pytest.raises(DataError, match="no usable item attribute column"):
        ItemFeatures.auto(pd.DataFrame({"flag": [True, False]}))


def test_l2_normalize_rows_reference() -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    dense = rng.random((5, 4)).astype(np.float32)
    dense[2] = 0
    got = l2_normalize_rows(sp.csr_array(dense)).toarray()
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    ref = np.divide(dense, norms, out=np.zeros_like(dense), where=norms > 0)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_embedding_block_without_dependency() -> None:
    pytest.importorskip("numpy")
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        f = ItemFeatures().embedding("title")
        with pytest.raises(MissingDependencyError, match=r"pip install 'recforge\[embeddings\]'"):
            f.fit(_attrs())
    else:  # pragma: no cover - only with the embeddings extra installed
        pytest.skip("sentence-transformers is installed")
