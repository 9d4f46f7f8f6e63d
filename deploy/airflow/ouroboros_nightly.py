"""Airflow DAG: `ouroboros run --state` every night, over the shards that arrived since the last run.

Put this file in the DAGs folder. The Airflow workers need apache-airflow-providers-apache-beam
(and apache-airflow-providers-google for Dataflow); the task runs `python -m ouroboros.run` with
the interpreter in OUROBOROS_PYTHON, which must have ouroboros installed (a venv, or the worker
image's Python). Settings are read from the environment when the DAG is parsed (no metadata
database access at parse time):

  OUROBOROS_INPUT        shard glob (several: separated by spaces)   e.g. gs://B/shards/*.warc.gz
  OUROBOROS_OUTPUT_ROOT  one dated partition per night below it     e.g. gs://B/curated
  OUROBOROS_STATE        manifest + band index of earlier runs        e.g. gs://B/state
  OUROBOROS_CONFIG       optional config file (YAML/TOML)
  OUROBOROS_PYTHON       interpreter with ouroboros (default: python3)
  OUROBOROS_RUNNER       DirectRunner (default), DataflowRunner, FlinkRunner, ...
  OUROBOROS_BEAM_OPTIONS JSON object of further Beam options, e.g.
                         {"temp_location": "gs://B/tmp", "sdk_container_image": "REGION-docker.pkg.dev/P/R/ouroboros-beam:0.1.0"}
  OUROBOROS_DATAFLOW_PROJECT, OUROBOROS_DATAFLOW_REGION   with DataflowRunner

One run at a time (`max_active_runs=1`): with state on an object store there is no lock file, so the
scheduler is what keeps two nights from overlapping. A failed attempt is retried into the same dated
partition (`--overwrite`: the state's manifest, written last, decides which shards are done, so a
retry replaces an uncommitted attempt's output and a completed night has nothing new to do).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

INPUTS = os.environ.get("OUROBOROS_INPUT", "/data/shards/*.warc.gz").split()
OUTPUT_ROOT = os.environ.get("OUROBOROS_OUTPUT_ROOT", "/data/curated").rstrip("/")
STATE = os.environ.get("OUROBOROS_STATE", "/data/state")
CONFIG = os.environ.get("OUROBOROS_CONFIG") or None
RUNNER = os.environ.get("OUROBOROS_RUNNER", "DirectRunner")
BEAM_OPTIONS = json.loads(os.environ.get("OUROBOROS_BEAM_OPTIONS") or "{}")
DATAFLOW = ({"project_id": os.environ.get("OUROBOROS_DATAFLOW_PROJECT"),
             "location": os.environ.get("OUROBOROS_DATAFLOW_REGION"),
             "wait_until_finished": True}
            if RUNNER == "DataflowRunner" else None)

with DAG(
    dag_id="ouroboros_nightly",
    description="curate the shards that arrived since the last night into a dated partition",
    schedule="17 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,  # a missed night's shards are picked up by the next run; no backfill partitions
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=15),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=2),
        "execution_timeout": timedelta(hours=20),
    },
    tags=["ouroboros"],
) as dag:
    BeamRunPythonPipelineOperator(
        task_id="curate",
        py_file="ouroboros.run",
        py_options=["-m"],
        py_interpreter=os.environ.get("OUROBOROS_PYTHON", "python3"),
        runner=RUNNER,
        pipeline_options={
            "input": INPUTS,  # a list becomes one --input per item
            "output": OUTPUT_ROOT + "/{{ ds }}",
            "state": STATE,
            "config": CONFIG,  # None: left out
            "overwrite": True,
            **BEAM_OPTIONS,
        },
        dataflow_config=DATAFLOW,
    )
