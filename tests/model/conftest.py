"""An empty MLflow SQLite store made once per session and copied into each test's folder:
creating the tables (alembic migrations) costs seconds that every test would otherwise repeat."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory):
    import mlflow

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()  # creates the tables
    return path


@pytest.fixture
def mlflow_db(tmp_path, mlflow_template_db):
    """`<tmp_path>/mlruns/mlflow.db`, the store `tests.model.corpus.tiny_params` points at."""
    target = tmp_path / "mlruns" / "mlflow.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_template_db, target)
    return target
