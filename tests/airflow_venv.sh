#!/usr/bin/env bash
# Installs Airflow and the Apache Beam provider into their own venv, tests/.venvs/airflow, for the
# DAG test in tests/test_deploy.py (opt-in: OUROBOROS_AIRFLOW_TEST=1 runs this from the test).
# Versions are pinned here: Airflow's constraint files are not reachable from these machines.
# The google provider is needed even for the DirectRunner: with Airflow 3, the Beam provider's
# operators raise in their constructor without it (BeamDataflowMixin.__init__, provider 6.3.1).
# Took 20 minutes here (PyPI downloads, a loaded machine); the venv is kept for later runs.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venvs/airflow
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
    "apache-airflow==3.3.2" \
    "apache-airflow-providers-apache-beam==6.3.1" \
    "apache-airflow-providers-google==22.8.0"
touch "$VENV/.complete"
