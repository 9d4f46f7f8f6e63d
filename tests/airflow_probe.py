"""Run inside the Airflow venv (tests/airflow_venv.sh) by tests/test_deploy.py: parses the DAG folder
with Airflow's DagBag and prints, as JSON, its import errors, each DAG's settings, and the command
the Beam operator of `ouroboros_nightly` would start for logical date argv[2]: the task is rendered
and executed, and the command is captured where the provider's hook would start the process."""

from __future__ import annotations

import json
import sys

from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.beam.hooks import beam as beam_hooks


def main() -> None:
    folder, ds = sys.argv[1], sys.argv[2]
    bag = DagBag(dag_folder=folder)
    report = {"import_errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()},
              "dags": {}, "command": None}
    for dag_id, dag in bag.dags.items():
        report["dags"][dag_id] = {
            "max_active_runs": dag.max_active_runs, "catchup": dag.catchup,
            "timetable": str(getattr(dag.timetable, "summary", dag.timetable)),
            "tasks": {t.task_id: {"type": type(t).__name__, "retries": t.retries,
                                  "retry_delay_s": t.retry_delay.total_seconds()}
                      for t in dag.tasks}}
    dag = bag.dags.get("ouroboros_nightly")
    if dag is not None:
        captured = {}

        def capture(cmd, *args, **kwargs):  # where the provider's hook would start the command
            captured["command"] = list(cmd)

        beam_hooks.run_beam_command = capture
        task = dag.get_task("curate")
        context = {"ds": ds}
        task.render_template_fields(context)
        task.execute(context)
        report["command"] = captured.get("command")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
