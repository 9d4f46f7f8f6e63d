"""The run configuration: one validated file (YAML or TOML), every stage switchable and tunable.

Each stage's section is defined beside the stage (``transforms/<stage>.py``), with the defaults of the
paper it follows. A wrong key or value is a ``ConfigError`` naming it, raised before any work starts.
``ouroboros config`` prints the effective configuration with its defaults.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

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
    compression: str = Field("zstd", description="Parquet codec (zstd, snappy, gzip, none)")
    row_group_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="target uncompressed row-group size (Beam's buffer)")
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
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


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
    """Config from a YAML (.yaml/.yml) or TOML (.toml) file, then `section.key=value` overrides."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix == ".toml":
                try:
                    import tomllib
                except ModuleNotFoundError:  # Python 3.10
                    import tomli as tomllib
                data = tomllib.loads(text)
            elif path.suffix in (".yaml", ".yml"):
                data = yaml.safe_load(text) or {}
            else:
                raise ConfigError(f"config file must be .yaml, .yml or .toml: {path}")
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"cannot parse {path}: {exc}") from None
    for override in overrides or []:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override must be section.key=value: {override!r}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
        source = f"{source} + --set"
    return parse_config(data, source)


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
