"""``recforge index``: build an approximate-retrieval index into a saved or registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def index(
    model: Annotated[
        Path | None,
        typer.Argument(help="Saved model (directory or .zip); omit with --registry."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the indexed model (default: in place)."),
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option("--registry", help="Index a registered version and publish the result."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Registered version to index (default: the active one)."),
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Make the indexed version active.")
    ] = False,
    kind: Annotated[str, typer.Option(help="hnsw, ivf or exact.")] = "hnsw",
    m: Annotated[int, typer.Option(help="HNSW graph degree.")] = 32,
    ef_construction: Annotated[int, typer.Option(help="HNSW build candidate list.")] = 80,
    ef_search: Annotated[int, typer.Option(help="HNSW search candidate list.")] = 64,
    nlist: Annotated[int | None, typer.Option(help="IVF cells (default 4*sqrt(items)).")] = None,
    nprobe: Annotated[int, typer.Option(help="IVF cells visited per query.")] = 32,
    min_items: Annotated[
        int, typer.Option(help="Score exactly below this catalogue size.")
    ] = 20_000,
) -> None:
    """Build an approximate-retrieval index (faiss HNSW or IVF) for a factor model.

    Recommendations, histories and similar items then take candidates from the index and
    re-score them exactly; seen items and filters stay exact. With --registry the indexed
    model is published as a new version whose parent is the indexed one.
    """
    import time

    from recforge.cli._common import load_model_source
    from recforge.registry import ModelRegistry
    from recforge.retrieval import IndexSpec

    spec = IndexSpec(
        kind=kind,  # type: ignore[arg-type]
        m=m,
        ef_construction=ef_construction,
        ef_search=ef_search,
        nlist=nlist,
        nprobe=nprobe,
        min_items=min_items,
    )
    loaded, info = load_model_source(model, registry, version)
    started = time.perf_counter()
    loaded.build_index(spec)
    took = time.perf_counter() - started
    typer.echo(f"built a {spec.kind} index over {loaded.n_items:,} items in {took:.1f} s")
    if registry is not None:
        assert info is not None
        published = ModelRegistry(registry).publish(
            loaded,
            metrics=info.metrics,
            data_fingerprint=info.data_fingerprint,
            parent=info.version,
            extra={"index": spec.to_dict()},
            promote=promote,
        )
        state = "active" if promote else "not active"
        typer.echo(f"published {published.version} (from {info.version}, {state})")
    else:
        assert model is not None
        target = loaded.save(out or model)
        typer.echo(f"wrote {target}")


def register(app: typer.Typer) -> None:
    """Add ``index`` to the root command."""
    app.command("index")(index)
