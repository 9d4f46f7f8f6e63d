"""Regenerates the README's column tables from schemas/record.py (tests check they are current)."""

from __future__ import annotations

import re
from pathlib import Path

from ouroboros.schemas.record import markdown_table, signals_table

README = Path(__file__).resolve().parents[1] / "README.md"  # the source checkout


def main() -> None:
    text = README.read_text()
    for name, table in (("columns", markdown_table()), ("signals", signals_table())):
        text = re.sub(rf"<!-- {name}:start -->.*?<!-- {name}:end -->",
                      lambda _: f"<!-- {name}:start -->\n{table}\n<!-- {name}:end -->", text, flags=re.DOTALL)
    README.write_text(text)


if __name__ == "__main__":
    main()
