"""The command runs exactly what was asked, or refuses before any work (issue 13).

Every refusal is exit code 2 with one line naming the argument or key, and leaves no output
directory behind. The real console script is run in a subprocess where what a user's terminal
shows matters (third-party warnings).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ouroboros.pipeline.cli import build_parser, execute, human_bytes, main
from ouroboros.pipeline.config import ConfigError, load_config
from ouroboros.pipeline.logs import harness_args
from ouroboros.pipeline.options import UsageError, check_beam_args

from tests.conftest import read_output

SCRIPT = Path(sys.executable).with_name("ouroboros")
TEXT = ("Document {name} {i}. The river ran past the old mill, and the miller's children watched "
        "the boats go by every morning before school. In the evening the light turned gold over "
        "the water, and the town gathered on the bridge to talk about the harvest and the weather.")
QUICK = ["--set", "synthetic.enabled=false", "--set", "near_dedup.enabled=false"]  # CLI plumbing


def shard(path: Path, n: int, bad_line: int | None = None) -> Path:
    """A JSONL shard of `n` records; `bad_line` (0-based) is invalid JSON (a read error record)."""
    lines = [json.dumps({"text": TEXT.format(name=path.stem, i=i)}) for i in range(n)]
    if bad_line is not None:
        lines[bad_line] = '{"text": "cut off'
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    return [shard(tmp_path / "a.jsonl", 5, bad_line=2), shard(tmp_path / "b.jsonl", 5)]


def run_main(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


# --- arguments -----------------------------------------------------------------------------------

def test_input_takes_several_values_and_repeats():
    parser, _ = build_parser()
    args, rest = parser.parse_known_args(["run", "-i", "a", "-i", "b", "c", "--input", "d",
                                          "-o", "out", "--direct_num_workers=2"])
    assert args.input == ["a", "b", "c", "d"] and rest == ["--direct_num_workers=2"]


@pytest.mark.parametrize(("extra", "named", "suggested"), [
    (["--direct_num_worker=2"], "--direct_num_worker=2", "did you mean --direct_num_workers?"),
    (["--limit10"], "--limit10", "did you mean --limit?"),
    (["-v"], "-v", "--log-level INFO"),
    (["--log_level=INFO"], "--log_level=INFO", "did you mean --log-level?"),
    (["--runner=NoSuchRunner"], "'NoSuchRunner'", "runners: DirectRunner"),
    (["--runner=Dataflo"], "'Dataflo'", "did you mean DataflowRunner?"),
    (["--runner=DaskRunner"], "'DaskRunner'", "did you mean ouroboros.pipeline.runners.DaskRunner?"),
    (["--runner=no_such_module.Runner"], "no_such_module.Runner", "cannot be loaded"),
    (["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"], "Beam's Dask runner",
     "use --runner=ouroboros.pipeline.runners.DaskRunner"),
    (["--direct_running_mode=bogus"], "--direct_running_mode", "invalid choice: 'bogus'"),
    (["--direct_num_workers", "two"], "--direct_num_workers", "invalid int value: 'two'"),
    (["stray.jsonl"], "'stray.jsonl'", "every input goes after --input"),
    (["--project", "p", "stray.jsonl"], "'stray.jsonl'", "every input goes after --input"),
])
def test_an_unknown_or_misspelled_option_or_runner_is_refused_before_any_work(
        shards, tmp_path, capsys, extra, named, suggested):
    out = tmp_path / "out"
    code, err = run_main(capsys, "run", "--input", *map(str, shards), "--output", str(out), *extra)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1  # one line, no traceback
    assert named in err and suggested in err
    assert not out.exists()


def test_beam_options_pass_through_in_every_spelling():
    """`--flag=value`, `--flag value`, boolean flags, repeated flags, Dask and Flink options."""
    known, runner = check_beam_args([
        "--runner=DirectRunner", "--direct_num_workers", "2", "--save_main_session",
        "--experiments=a", "--experiments", "b", "--project", "p", "--region=r",
        "--temp_location=gs://b/tmp", "--dask_client_address=tcp://h:8786", "--flink_master=h:8081",
        "--environment_type=LOOPBACK", "--sdk_container_image=img"])
    assert known.direct_num_workers == 2 and known.save_main_session
    assert known.experiments == ["a", "b"] and known.project == "p"
    assert type(runner).__name__ in ("SwitchingDirectRunner", "DirectRunner")
    with pytest.raises(UsageError, match="unknown option --flink_mastr=h"):
        check_beam_args(["--flink_mastr=h:8081"])


def test_execute_checks_beam_options_itself(shards, tmp_path):
    """The Python API refuses as the command does, before the output directory exists."""
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="unknown runner"):
        execute([str(s) for s in shards], str(out), beam_args=["--runner=NoSuchRunner"])
    assert not out.exists()


def test_dataflow_without_the_gcp_extra_is_refused(shards, tmp_path, capsys):
    try:
        import apache_beam.runners.dataflow.internal.apiclient  # noqa: F401
        pytest.skip("the gcp extra is installed")
    except ImportError:
        pass
    out = tmp_path / "out"
    code, err = run_main(capsys, "run", "-i", str(shards[0]), "-o", str(out),
                         "--runner=DataflowRunner", "--project=p", "--region=r")
    assert code == 2 and "needs the gcp extra" in err and not out.exists()


@pytest.mark.parametrize(("argv", "named"), [
    (["config", "--bogus"], "unknown option --bogus"),
    (["schema", "extra"], "unexpected argument 'extra'"),
    (["config", "-v"], "unknown option -v"),
    (["train-synthetic", "--data", "x.jsonl", "--output", "m", "--sed", "1"],
     "unknown option --sed (did you mean --seed?)"),
])
def test_other_subcommands_refuse_unknown_arguments(capsys, argv, named):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and named in captured.err
    assert captured.out == ""  # refused before doing anything


def test_limit_needs_a_positive_count_and_no_state(shards, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "-i", str(shards[0]), "-o", str(tmp_path / "o"), "--limit", "0"])
    assert exit_.value.code == 2
    code, err = run_main(capsys, "run", "-i", str(shards[0]), "-o", str(tmp_path / "o"),
                         "--limit", "3", "--state", str(tmp_path / "state"))
    assert code == 2 and "--limit cannot be combined with --state" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "state").exists()


# --- inputs, config and model paths --------------------------------------------------------------

@pytest.mark.parametrize(("extra", "named"), [
    (["--input", "{tmp}/nothing-*.jsonl"], "input matched no files: {tmp}/nothing-*.jsonl"),
    (["--input", "{tmp}/missing.jsonl"], "input not found: {tmp}/missing.jsonl"),
    (["--config", "{tmp}/missing.yaml"], "config file not found: {tmp}/missing.yaml"),
    (["--set", "quality_model.model_path={tmp}/nowhere.bin"],
     "quality_model.model_path: no such file: {tmp}/nowhere.bin"),
    (["--set", "synthetic.model_path={tmp}/nowhere"],
     "synthetic.model_path: no such directory: {tmp}/nowhere"),
    (["--set", "synthetic.model_path={tmp}"], "is not a `train-synthetic` model directory"),
    (["--set", "quality.gopher_quality.min_doc_words=-5"],
     ("invalid configuration in --set: quality.gopher_quality.min_doc_words: Input should be "
      "greater than or equal to 0 (got -5)")),
    (["--set", "x.y=!!python/object:os.system"], "invalid configuration in --set: x.y: cannot read"),
    (["--set", "normalize.max_text_chars=[1,"], "normalize.max_text_chars: cannot read '[1,'"),
    (["--set", "novalue"], "'novalue' is not section.key=value"),
])
def test_bad_inputs_config_and_model_paths_are_one_line_errors_before_any_work(
        shards, tmp_path, capsys, extra, named):
    out = tmp_path / "out"
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    inputs = [] if "--input" in extra else ["--input", str(shards[0])]
    code, err = run_main(capsys, "run", *inputs, "--output", str(out), *extra)
    assert code == 2
    assert named.replace("{tmp}", str(tmp_path)) in err and err.count("\n") == 1
    assert not out.exists()


def test_set_errors_read_like_config_file_errors(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("quality:\n  gopher_quality:\n    min_doc_words: -5\n")
    with pytest.raises(ConfigError) as from_file:
        load_config(config)
    with pytest.raises(ConfigError) as from_set:
        load_config(None, ["quality.gopher_quality.min_doc_words=-5"])
    assert str(from_file.value) == f"invalid configuration in {config}: " + str(
        from_set.value).removeprefix("invalid configuration in --set: ")
    config.write_text("extract: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^cannot parse .*c\.yaml: .*\(line 2, column 1\)$"):
        load_config(config)


@pytest.mark.parametrize(("override", "key"), [
    ("quality.gopher_quality.min_stop_words=-1", "quality.gopher_quality.min_stop_words"),
    ("quality.gopher_quality.min_alpha_words_ratio=1.5", "min_alpha_words_ratio"),
    ("quality.gopher_quality.min_avg_word_length=20", "must not exceed max_avg_word_length"),
    ("quality.gopher_repetition.dup_line_frac=2", "quality.gopher_repetition.dup_line_frac"),
    ("quality.gopher_repetition.dup_ngram_char_frac={11: 0.1}", "n=11 is not computed"),
    ("quality.gopher_repetition.top_ngram_char_frac={2: 1.2}", "share in [0, 1]"),
    ("quality.c4.min_num_sentences=-1", "quality.c4.min_num_sentences"),
    ("quality.fineweb.short_line_thr=-0.1", "quality.fineweb.short_line_thr"),
    ("quality.stop_words_per_language=0", "quality.stop_words_per_language"),
    ("quality_model.threshold=1.5", "quality_model.threshold"),
    ("langid.min_score=2", "langid.min_score"),
    ("extract.accept_status=[200, 1000]", "extract.accept_status.1"),
    ("normalize.min_text_chars=100", "must not exceed max_text_chars"),
    ("output.compression=zstdd", "output.compression"),
    ("output.num_shards=-1", "output.num_shards"),
    ("sampling.budget_fraction=1.5", "sampling.budget_fraction"),
    ("synthetic.ai_assisted_threshold=0.95", "must not exceed synthetic_threshold"),
])
def test_config_values_have_their_natural_bounds(override, key):
    overrides = [override, "normalize.max_text_chars=50"] if "min_text_chars" in override else [override]
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert key in str(err.value) and "\n" not in str(err.value)


# --- --dry-run, --limit ----------------------------------------------------------------------------

def test_dry_run_lists_the_shards_and_creates_nothing(shards, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a shard")
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["run", "--input", str(tmp_path), "--output", str(out), "--dry-run", *QUICK])
    printed = capsys.readouterr().out
    assert code == 0
    assert "nothing was run and nothing was written" in printed and "3 shards" in printed
    for s in shards:
        size = re.escape(human_bytes(s.stat().st_size))
        assert re.search(rf"\n +jsonl +{size}  {re.escape(str(s))}\n", printed)
    assert "unknown format by name" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no staging


def test_dry_run_with_state_says_which_shards_would_be_skipped(shards, tmp_path, capsys):
    from ouroboros.pipeline.manifest import identify_shards, write_manifest

    state = tmp_path / "state"
    write_manifest(str(state), "night-1", identify_shards([str(shards[0])]))
    before = sorted(str(p) for p in state.rglob("*"))
    code = main(["run", "-i", *map(str, shards), "-o", str(tmp_path / "out"), "--state",
                 str(state), "--dry_run"])  # Beam's spelling is ours too, not Dataflow's dry run
    printed = capsys.readouterr().out
    assert code == 0 and f"{shards[0]}  (processed by an earlier run: skipped)" in printed
    assert f"{shards[1]}\n" in printed and "1 shards already processed would be skipped" in printed
    assert sorted(str(p) for p in state.rglob("*")) == before  # no lock taken, nothing written
    assert not (tmp_path / "out").exists()


def test_dry_run_still_refuses_what_a_run_would_refuse(shards, tmp_path, capsys):
    code, err = run_main(capsys, "run", "-i", str(shards[0]), "-o", str(tmp_path / "out"),
                         "--dry-run", "--direct_num_worker=2")
    assert code == 2 and "--direct_num_workers" in err


@pytest.mark.slow
def test_limit_takes_the_first_records_in_shard_order_and_accounts_for_them(shards, tmp_path):
    """a.jsonl has 5 records (line 2 is broken), b.jsonl 5: the first 7 are all of a, then b's
    lines 0 and 1; the broken line counts as a record (an error) like any other."""
    out = tmp_path / "out"
    assert main(["run", "-i", str(shards[1]), str(shards[0]), "-o", str(out), "--limit", "7",
                 "--set", "quality.enabled=false", *QUICK]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input_records"] == 7 and stats["accounting"]["holds"]
    assert stats["limit"]["max_input_records"] == 7 and stats["limit"]["shards_read"] == 2
    rows = [*read_output(out, "curated"), *read_output(out, "rejected")]
    errors = read_output(out, "errors")
    taken = sorted((Path(r["source_uri"]).name, r["source_record_id"]) for r in rows)
    assert taken == [("a.jsonl", f"line:{i}") for i in (0, 1, 3, 4)] + [
        ("b.jsonl", "line:0"), ("b.jsonl", "line:1")]
    assert [(Path(e["source_uri"]).name, e["source_location"]) for e in errors] == [("a.jsonl", "line:2")]


# --- the real command in a terminal ----------------------------------------------------------------

def script(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed at {SCRIPT}")
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, check=False)


def test_help_says_beam_options_pass_through_and_prints_no_warning():
    done = script("config", "--help")
    assert done.returncode == 0 and done.stderr == ""
    done = script("run", "--help")
    assert "Beam pipeline options pass through" in done.stdout
    assert "--direct_running_mode=multi_processing --direct_num_workers=2" in done.stdout
    assert "--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp" in done.stdout
    assert done.stderr == ""


def test_third_party_warnings_show_only_when_log_level_asks():
    quiet = script("config")
    assert quiet.returncode == 0 and quiet.stderr == ""
    try:
        import apitools  # noqa: F401
        return  # the gcp extra is installed: Beam has nothing to warn about
    except ImportError:
        pass
    loud = script("config", "--log-level", "WARNING")
    assert "apitools not found" in loud.stderr  # the warning exists: the default hides it


@pytest.mark.slow
def test_an_unquoted_glob_processes_every_shard_without_warnings(shards, tmp_path):
    """`ouroboros run --input *.jsonl` reaches the command as several paths after --input."""
    done = script("run", "--input", *[s.name for s in shards], "--output", "out", *QUICK,
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no apitools warning, from this process or the extractor's
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["shards"] == 2 and stats["input_records"] == 10 and stats["accounting"]["holds"]


# --- logging and runners -------------------------------------------------------------------------

def test_local_worker_processes_are_as_quiet_as_the_command():
    assert harness_args(["--direct_num_workers=2"], None) == [
        "--direct_num_workers=2", "--default_sdk_harness_log_level=ERROR"]
    assert harness_args([], "info") == ["--default_sdk_harness_log_level=INFO"]
    explicit = ["--default_sdk_harness_log_level=DEBUG"]
    assert harness_args(explicit, None) == explicit


@pytest.mark.slow
def test_dask_options_are_known_and_the_runner_explains_itself_without_the_dask_extra():
    code = """
import sys

class NoDask:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, NoDask())
from ouroboros.pipeline.options import UsageError, check_beam_args
check_beam_args(["--dask_client_address=tcp://h:8786", "--dask_npartitions=4"])
try:
    check_beam_args(["--runner=ouroboros.pipeline.runners.DaskRunner"])
except UsageError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "needs the dask extra" in done.stdout


def test_execute_refuses_a_run_id_that_escapes_the_output_before_creating_it(tmp_path):
    from ouroboros.pipeline.cli import execute
    from ouroboros.pipeline.options import UsageError

    shard = tmp_path / "a.jsonl"
    shard.write_text('{"text": "hello"}\n')
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="run id"):
        execute([str(shard)], str(out), run_id="../x", quiet=True)
    assert not out.exists() and not (tmp_path / "x").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the choice is made on Linux")
@pytest.mark.parametrize("chosen, expected", [(None, "system"), ("jemalloc", "jemalloc")])
def test_the_command_gives_arrow_a_pool_that_returns_freed_memory_unless_the_user_chose(
        chosen, expected):
    # pyarrow's default pool (mimalloc) keeps freed pages: a long local run crept up in memory.
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = ("import sys; from ouroboros.pipeline.cli import main; code = main(['config']); "
            "import pyarrow as pa; print('POOL', code, pa.default_memory_pool().backend_name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.stdout.strip().splitlines()[-1] == f"POOL 0 {expected}", done.stderr[-2000:]


_MAPPED_PROBE = """
import ctypes
from ouroboros.pipeline.cli import tune_malloc
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
applied = tune_malloc()
big = bytearray(8 << 20)
del big  # glibc's own rule would now raise its mmap threshold to 8 MiB
before = libc.mallinfo2().hblkhd
block = bytearray(1 << 20)
print("MAPPED", ",".join(sorted(applied)), libc.mallinfo2().hblkhd - before >= 1 << 20)
"""


def _has_mallinfo2() -> bool:
    try:
        import ctypes

        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_mallinfo2(),
                    reason="glibc 2.33+ (mallopt, mallinfo2)")
@pytest.mark.parametrize("user_threshold, expected", [
    (None, "MAPPED MALLOC_MMAP_THRESHOLD_,MALLOC_TRIM_THRESHOLD_ True"),
    ("33554432", "MAPPED MALLOC_TRIM_THRESHOLD_ False")])
def test_the_command_keeps_large_blocks_mapped_so_freed_memory_goes_back_unless_the_user_chose(
        user_threshold, expected):
    # glibc's sliding mmap threshold put large buffers on the heap after the first big free: the
    # keyed stages' shuffle data stayed resident until the run ended (README, "Scale").
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if user_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = user_threshold
    done = subprocess.run([sys.executable, "-c", _MAPPED_PROBE], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.stdout.strip().splitlines()[-1] == expected, done.stderr[-2000:]
