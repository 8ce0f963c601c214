"""One local SparkSession for all Spark tests (skipped without pyspark or Java)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'recforge[spark]')")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A ``local[2]`` session with few shuffle partitions, stopped after the tests."""
    from recforge import spark as rs

    if not rs.java_available():
        pytest.skip("no Java runtime: Spark tests need java 17+")
    session = rs.spark_session("local[2]", shuffle_partitions=4, driver_memory="1g")
    yield session
    session.stop()
