"""The refactored pipeline takes the same decisions as main did before it (tests/golden.py).

The stored summaries were captured from main before the stage contract, the shared representative
rule and the quality rule tables landed; ids and reasons only, never text.
"""

from __future__ import annotations

import pytest

from tests import golden
from tests.conftest import require_data


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["web", "bench"])
def test_same_curated_rejected_and_error_records_as_before(corpus, tmp_path):
    require_data("web")
    require_data("quality")
    got = golden.run_and_summarize(corpus, tmp_path)
    want = golden.load(corpus)
    for part in ("curated", "rejected", "errors"):
        missing = [r for r in want[part] if r not in got[part]]
        extra = [r for r in got[part] if r not in want[part]]
        assert not missing and not extra, (part, missing[:10], extra[:10])
