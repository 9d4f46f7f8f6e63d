"""Beam pipeline options as the command takes them: every argument checked before any work starts.

Arguments `ouroboros` does not define are handed to Beam (`--runner`, `--project`,
`--direct_num_workers`, ...). Beam itself only *warns* about an argument no options class knows
(`Discarding unparseable args`) and runs anyway, so a typo or a shell-expanded glob silently ran
less than was asked. Here every such argument must be an option of a registered `PipelineOptions`
class (Beam's standard, direct, Google Cloud, worker, setup, debug, portable, Flink, Spark, Dask,
..., and whatever the chosen runner's module registers), its value must parse, and `--runner`
must name a runner that can be created; anything else is a `UsageError` that names the argument
and the nearest known option.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
from collections.abc import Iterable
from typing import Any

OUR_DASK_RUNNER = "ouroboros.pipeline.runners.DaskRunner"
BEAM_DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
VERBOSE_FLAGS = ("-v", "-vv", "-vvv", "--verbose", "--debug", "-d")


class UsageError(ValueError):
    """A mistake on the command line: the command says what and exits with code 2."""


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise UsageError(f"Beam option {message}")


def _register_option_classes() -> None:
    """Imports the modules whose `PipelineOptions` subclasses Beam does not load by itself."""
    try:  # Beam's DaskOptions live in the Dask runner's module, which needs the dask extra
        importlib.import_module("apache_beam.runners.dask.dask_runner")
    except ImportError:
        pass
    importlib.import_module("ouroboros.pipeline.runners")  # our runners (and DaskOptions without dask)


def option_classes() -> list[type]:
    """Every registered `PipelineOptions` subclass (all depths), one per qualified name."""
    from apache_beam.options.pipeline_options import PipelineOptions

    _register_option_classes()
    found: dict[str, type] = {}
    todo = list(PipelineOptions.__subclasses__())
    while todo:
        cls = todo.pop(0)
        found.setdefault(f"{cls.__module__}.{cls.__qualname__}", cls)
        todo.extend(cls.__subclasses__())
    return list(found.values())


def beam_parser() -> argparse.ArgumentParser:
    """Beam's own argument parser holding every registered option, raising instead of exiting."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    class StrictBeamParser(_BeamArgumentParser):
        error = _RaisingParser.error  # Beam's ignores ambiguity; argparse's would exit

    # As Beam parses them (no abbreviations); one class redefining a flag must not crash us.
    parser = StrictBeamParser(allow_abbrev=False, add_help=False, conflict_handler="resolve")
    for cls in option_classes():
        cls._add_argparse_args(parser)  # Beam's registration hook
    return parser


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings]


def suggest(name: str, candidates: Iterable[str]) -> str:
    """` (did you mean X?)` for the nearest candidate, or an empty string."""
    if name in VERBOSE_FLAGS:
        return " (for more output use --log-level INFO)"
    key = name.replace("_", "-").lower()
    by_key = {c.replace("_", "-").lower(): c for c in candidates}
    match = difflib.get_close_matches(key, list(by_key), n=1, cutoff=0.6)
    return f" (did you mean {by_key[match[0]]}?)" if match else ""


def unknown_arguments(unknown: list[str], candidates: Iterable[str], bare_hint: str = "") -> str:
    """One message naming every argument nobody knows; empty when there is none."""
    candidates = list(candidates)
    problems = []
    value_of_unknown = False  # `--unknown value`: the value is not a second problem
    for arg in unknown:
        if arg.startswith("-") and len(arg) > 1 and arg != "--":
            name = arg.split("=", 1)[0]
            problems.append(f"unknown option {arg}{suggest(name, candidates)}")
            value_of_unknown = "=" not in arg and arg.startswith("--")
        elif value_of_unknown:
            value_of_unknown = False
        else:
            problems.append(f"unexpected argument {arg!r}{bare_hint}")
    return "; ".join(problems)


# Shown when a runner name is unknown (Beam knows a few more: test and internal runners).
SHOWN_RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner",
                 "PrismRunner", OUR_DASK_RUNNER)


def _runner_stems() -> dict[str, str]:
    """Lower-case name without `Runner` -> the name to suggest: Beam's known runners and ours."""
    from apache_beam.options.pipeline_options import StandardOptions

    names = [*StandardOptions.KNOWN_RUNNER_NAMES, OUR_DASK_RUNNER]
    return {n.rsplit(".", 1)[-1].lower().removesuffix("runner"): n for n in names}


def check_runner(name: str | None) -> Any:
    """The runner `--runner` names, created as Beam will create it; a `UsageError` if it cannot be.

    Beam resolves a known short name (case-insensitive, `Runner` optional) or imports a dotted
    path; an unknown name is a traceback deep in `Pipeline()` (after the output directory exists).
    """
    from apache_beam.runners.runner import PipelineRunner, create_runner

    if not name:
        return None
    if name.lower() == BEAM_DASK_RUNNER.lower():
        raise UsageError(f"runner {name}: Beam's Dask runner runs only the last sink of a "
                         f"multi-output pipeline like this one (see README, Runners); use "
                         f"--runner={OUR_DASK_RUNNER}")
    try:
        runner = create_runner(name)
    except ValueError:
        stems = _runner_stems()
        stem = name.rsplit(".", 1)[-1].lower().removesuffix("runner")
        match = difflib.get_close_matches(stem, list(stems), n=1, cutoff=0.6)
        hint = f" (did you mean {stems[match[0]]}?)" if match else ""
        raise UsageError(f"unknown runner {name!r}{hint}; runners: {', '.join(SHOWN_RUNNERS)} "
                         "(and Beam's test runners), or the dotted path of a PipelineRunner "
                         "class") from None
    except ImportError as exc:
        raise UsageError(f"runner {name} cannot be loaded: {exc}") from None
    except AttributeError as exc:
        raise UsageError(f"runner {name} does not exist: {exc}") from None
    except (TypeError, RuntimeError, OSError) as exc:  # a constructor that fails or needs args
        raise UsageError(f"runner {name} cannot be created: {type(exc).__name__}: {exc}") from None
    if not isinstance(runner, PipelineRunner):
        raise UsageError(f"runner {name} is not a Beam PipelineRunner "
                         f"(it is {type(runner).__module__}.{type(runner).__qualname__})")
    if "dataflow" in type(runner).__module__:
        try:  # what DataflowRunner imports only once the pipeline is built
            importlib.import_module("apache_beam.runners.dataflow.internal.apiclient")
        except ImportError as exc:
            raise UsageError(f"runner {name} needs the gcp extra: pip install "
                             f"'ouroboros-curate[gcp]' ({exc})") from None
    return runner


def is_local_direct(runner: Any) -> bool:
    """True for the DirectRunner (the default), whose worker processes print to this terminal."""
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner, DirectRunner
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return runner is None or isinstance(runner, (DirectRunner, BundleBasedDirectRunner, FnApiRunner))


def check_beam_args(args: list[str], own_options: Iterable[str] = (),
                    bare_hint: str = "") -> tuple[argparse.Namespace, Any]:
    """Parses `args` as Beam will; every argument must be a known option with a valid value.

    `own_options` (the command's own flags) are offered as suggestions too, so `--limit10`
    suggests `--limit`. Returns Beam's parsed namespace and the runner (None: the default)."""
    pre = _RaisingParser(allow_abbrev=False, add_help=False)
    pre.add_argument("--runner")
    runner = check_runner(pre.parse_known_args(args)[0].runner)  # its module may add options
    parser = beam_parser()
    known, unknown = parser.parse_known_args(args)
    message = unknown_arguments(unknown, [*own_options, *option_strings(parser)], bare_hint)
    if message:
        raise UsageError(message)
    return known, runner


def pipeline_options(args: list[str]):
    """`PipelineOptions` for `args`, checked as `check_beam_args` and Beam's own validator do.

    Beam validates options (e.g. Dataflow's required `--project`) only in `Pipeline()`, after the
    output directory was created; here the same validator runs first."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.direct.direct_runner import DirectRunner

    _, runner = check_beam_args(args)
    errors = PipelineOptionsValidator(PipelineOptions(args), runner or DirectRunner()).validate()
    if errors:
        raise UsageError("invalid Beam options: " + "; ".join(e.strip() for e in errors))
    return PipelineOptions(args)
