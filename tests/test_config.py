from __future__ import annotations

import pytest
from ouroboros.pipeline.cli import main
from ouroboros.pipeline.config import Config, ConfigError, defaults_yaml, load_config, parse_config


def test_defaults_are_valid_and_hash_is_stable():
    assert Config().sha256() == parse_config({}).sha256()
    assert Config().sha256() != parse_config({"extract": {"engine": "resiliparse"}}).sha256()


def test_unknown_key_and_bad_value_are_named():
    with pytest.raises(ConfigError) as err:
        parse_config({"extract": {"engine": "lynx", "bogus": 1}, "nosuchstage": {}})
    msg = str(err.value)
    assert "extract.engine" in msg and "extract.bogus: unknown key" in msg
    assert "nosuchstage: unknown key" in msg


def test_yaml_toml_and_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("extract:\n  engine: resiliparse\nnormalize:\n  max_text_chars: 1000\n")
    t = tmp_path / "c.toml"
    t.write_text('[extract]\nengine = "resiliparse"\n[normalize]\nmax_text_chars = 1000\n')
    assert load_config(y) == load_config(t)
    cfg = load_config(y, ["normalize.max_text_chars=50", "exact_dedup.enabled=false"])
    assert cfg.normalize.max_text_chars == 50 and cfg.exact_dedup.enabled is False
    with pytest.raises(ConfigError, match="normalize.max_text_chars"):
        load_config(None, ["normalize.max_text_chars=-5"])


def test_cli_rejects_bad_config_before_any_work(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extract:\n  enigne: trafilatura\n")
    out = tmp_path / "out"
    code = main(["run", "--input", str(tmp_path / "*.jsonl"), "--output", str(out), "--config", str(bad)])
    assert code == 2
    assert "extract.enigne: unknown key" in capsys.readouterr().err
    assert not out.exists()


def test_defaults_yaml_documents_every_section():
    text = defaults_yaml()
    for section in Config.model_fields:
        assert f"\n{section}:" in text


def test_printed_defaults_are_a_valid_config_equal_to_the_defaults():
    import yaml

    assert parse_config(yaml.safe_load(defaults_yaml())) == Config()
