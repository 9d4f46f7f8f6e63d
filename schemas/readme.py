"""Regenerates the README's generated tables (tests check they are current): the output columns and
quality signals from schemas/record.py, and the quality rules from the rule tables
(transforms/quality/rules.py) with the defaults of the family configs."""

from __future__ import annotations

import re
from pathlib import Path

from ouroboros.schemas.record import markdown_table, signals_table

README = Path(__file__).resolve().parents[1] / "README.md"  # the source checkout


def rules_table() -> str:
    from ouroboros.transforms.quality.filters import QualityConfig
    from ouroboros.transforms.quality.rules import markdown_rules

    cfg = QualityConfig()
    return markdown_rules({"gopher_quality": cfg.gopher_quality,
                           "gopher_repetition": cfg.gopher_repetition, "c4": cfg.c4,
                           "fineweb": cfg.fineweb})


def main() -> None:
    text = README.read_text()
    for name, table in (("columns", markdown_table()), ("signals", signals_table()),
                        ("rules", rules_table())):
        block = f"<!-- {name}:start -->\n{table}\n<!-- {name}:end -->"
        text = re.sub(rf"<!-- {name}:start -->.*?<!-- {name}:end -->",
                      lambda _, block=block: block, text, flags=re.DOTALL)
    README.write_text(text)


if __name__ == "__main__":
    main()
