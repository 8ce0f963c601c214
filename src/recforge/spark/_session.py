"""The one way recforge starts (or finds) a SparkSession."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from recforge.exceptions import MissingDependencyError

__all__ = ["java_available", "spark_session"]


def java_available() -> bool:
    """Whether a ``java`` executable is found (``$JAVA_HOME/bin/java`` or on ``PATH``)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return True
    return shutil.which("java") is not None


def spark_session(
    master: str = "local[2]",
    *,
    app_name: str = "recforge",
    shuffle_partitions: int | None = 4,
    driver_memory: str | None = "1g",
    config: Mapping[str, Any] | None = None,
) -> SparkSession:
    """The active SparkSession, or a new one on ``master``.

    A running session is returned unchanged. Under ``spark-submit`` the master and the
    driver memory come from the submit command (``master`` and ``driver_memory`` are
    ignored there); the other settings are applied to the new session.

    Parameters
    ----------
    master
        Spark master URL: ``local[2]``, ``local[*]``, ``yarn``, ``k8s://https://host:6443``,
        ``spark://host:7077``.
    app_name
        Application name shown in the Spark UI.
    shuffle_partitions
        ``spark.sql.shuffle.partitions`` (Spark's default of 200 is slow on small data).
    driver_memory
        ``spark.driver.memory`` of a new local session (``None``: Spark's default).
    config
        Further Spark settings, e.g. ``{"spark.executor.memory": "8g"}``.

    Returns
    -------
    pyspark.sql.SparkSession

    Raises
    ------
    MissingDependencyError
        If no Java runtime is found (Spark runs on the JVM).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if not java_available():
        raise MissingDependencyError(
            "Spark needs a Java runtime (17 or newer) but no 'java' was found on PATH or in "
            "JAVA_HOME. Install one, e.g.: apt-get install openjdk-17-jre-headless"
        )
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # started by spark-submit
    builder = SparkSession.builder.appName(app_name)
    if not submitted:
        builder = builder.master(master)
    settings: dict[str, Any] = {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # local Python workers run this interpreter (with recforge and its dependencies)
        os.environ["PYSPARK_PYTHON"] = sys.executable
    if shuffle_partitions is not None:
        settings["spark.sql.shuffle.partitions"] = str(int(shuffle_partitions))
    if driver_memory is not None and not submitted:
        settings["spark.driver.memory"] = driver_memory
    settings.update(config or {})
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
