"""The run configuration: one validated file (YAML or TOML), every stage switchable and tunable.

Each stage's section is defined beside the stage (``transforms/<stage>.py``), with the defaults of the
paper it follows. A wrong key or value is a ``ConfigError`` naming it, raised before any work starts.
``ouroboros config`` prints the effective configuration with its defaults.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from ouroboros.transforms.base import StrictModel
from ouroboros.transforms.dedup.exact import ExactDedupConfig
from ouroboros.transforms.dedup.minhash import MinHashConfig
from ouroboros.transforms.io.extract import ExtractConfig
from ouroboros.transforms.io.normalize import NormalizeConfig
from ouroboros.transforms.io.read import ReadConfig
from ouroboros.transforms.quality.filters import QualityConfig
from ouroboros.transforms.quality.langid import LangIdConfig
from ouroboros.transforms.quality.model import QualityModelConfig
from ouroboros.transforms.sampling.quotas import SamplingConfig
from ouroboros.transforms.sampling.topics import TopicConfig
from ouroboros.transforms.synthetic.score import SyntheticConfig
from pydantic import Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A configuration problem, with the offending key in the message."""


class OutputConfig(StrictModel):
    compression: Literal["zstd", "snappy", "gzip", "brotli", "lz4", "none"] = Field(
        "zstd", description="Parquet codec")
    # 4 MiB, not Beam's 64: every output writer (curated, rejected, errors, band index) holds up
    # to this many bytes of Arrow rows before it writes a row group, and a local run has several
    # open at once. 64 -> 16 MiB lowered a 50k-document local run's peak RSS from 1,046 to 902 MB;
    # 16 -> 4 MiB, 577 -> 531 MB (README, Configuration), same rows, curated file 1% larger
    # (row groups of ~1,000 documents, ~1.8 MB zstd; datatrove writes 1,000-document row groups).
    row_group_bytes: int = Field(
        4 * 1024 * 1024, gt=0,
        description="uncompressed bytes a Parquet writer buffers before writing a row group "
                    "(memory per output writer)")
    num_shards: int = Field(0, ge=0, description="output files per output; 0 lets the runner decide")
    write_rejected: bool = Field(True, description="write the rejected records (with reasons)")


class Config(StrictModel):
    read: ReadConfig = Field(default_factory=ReadConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    quality_model: QualityModelConfig = Field(default_factory=QualityModelConfig)
    exact_dedup: ExactDedupConfig = Field(default_factory=ExactDedupConfig)
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    near_dedup: MinHashConfig = Field(default_factory=MinHashConfig)
    topics: TopicConfig = Field(default_factory=TopicConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _cross_section_checks(self) -> Config:
        if "topic" in self.sampling.keys and not self.topics.enabled:
            raise ValueError("sampling.keys uses 'topic' but topics.enabled is false "
                             "(every document's topic would be 'unknown')")
        return self

    def sha256(self) -> str:
        """Hash of the effective configuration (canonical JSON): recorded on every row."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _format_errors(err: ValidationError, source: str) -> str:
    """One line per problem, naming the key; a single problem is a single line."""
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            problems.append(f"{key}: {msg}" + ("" if isinstance(got, dict) else f" (got {got!r})"))
    if len(problems) == 1:
        return f"invalid configuration in {source}: {problems[0]}"
    return "\n".join([f"invalid configuration in {source}:", *(f"  {p}" for p in problems)])


def _yaml_problem(exc: Exception) -> str:
    """A YAML error in one line (PyYAML's own message spans several, with a source excerpt)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def parse_config(data: dict[str, Any] | None, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {source}: the top level must be a mapping")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Config from a YAML (.yaml/.yml) or TOML (.toml) file, then `section.key=value` overrides.

    Every problem is a one-line `ConfigError` naming the file or `--set` and the key."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        if path.suffix not in (".toml", ".yaml", ".yml"):
            raise ConfigError(f"config file must be .yaml, .yml or .toml: {path}")
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".toml":
                try:
                    import tomllib
                except ModuleNotFoundError:  # Python 3.10
                    import tomli as tomllib
                data = tomllib.loads(text)
            else:
                data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse {path}: {_yaml_problem(exc)}") from None
        except Exception as exc:
            raise ConfigError(f"cannot parse {path}: {exc}") from None
    if overrides:
        source = "--set" if path is None else f"{source} + --set"
    for override in overrides or []:
        key, sep, value = override.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"invalid configuration in --set: {override!r} is not "
                              "section.key=value")
        if not isinstance(data, dict):
            break  # parse_config says what is wrong with the file's top level
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"invalid configuration in {source}: {key}: {part} is not a "
                                  "section")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid configuration in --set: {key}: cannot read {value!r} "
                              f"as a YAML value: {_yaml_problem(exc)}") from None
    return parse_config(data, source)


def check_model_paths(config: Config) -> None:
    """Model files the configuration names must be there and load now, not fail a worker an hour in.

    Local paths, `file://` and any Beam filesystem (`gs://`, `s3://`): see `pipeline/models.py`."""
    from ouroboros.pipeline.models import model_path_problems

    problems = model_path_problems(config)
    if problems:
        raise ConfigError("; ".join(problems))


def defaults_yaml() -> str:
    """The default configuration as commented YAML (every key, its default and its meaning)."""
    out = ["# ouroboros configuration: every key with its default. Unknown keys are errors."]

    def emit(model: StrictModel, indent: int) -> None:
        for key, field in type(model).model_fields.items():
            value = getattr(model, key)
            pad = "  " * indent
            doc = (field.description or type(value).__doc__ or "").strip().split("\n")[0]
            if isinstance(value, StrictModel):
                out.append(f"{pad}{key}:" + (f"  # {doc}" if doc else ""))
                emit(value, indent + 1)
            else:
                out.append(f"{pad}{key}: {json.dumps(value)}" + (f"  # {doc}" if doc else ""))

    defaults = Config()
    for section in Config.model_fields:
        out.append("")
        model = getattr(defaults, section)
        doc = (type(model).__doc__ or "").strip().split("\n")[0]
        out.append(f"{section}:" + (f"  # {doc}" if doc else ""))
        emit(model, 1)
    return "\n".join(out) + "\n"
