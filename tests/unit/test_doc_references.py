"""The docs cite tests as evidence (``unit/test_x.py::test_name``, paths under ``tests/``): each
cited test exists, so a renamed or moved test cannot leave a page pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITATION = re.compile(r"`((?:unit|integration|e2e)/[\w/]+\.py)::(\w+)`")


def test_every_test_the_docs_cite_exists() -> None:
    cited = [
        (page.name, path, name)
        for page in sorted((ROOT / "docs").glob("*.md"))
        for path, name in CITATION.findall(page.read_text(encoding="utf-8"))
    ]
    assert cited  # the pattern still matches how the pages cite tests
    missing = [
        f"{page}: {path}::{name}"
        for page, path, name in cited
        if not (source := ROOT / "tests" / path).exists()
        or not re.search(rf"^def {name}\b", source.read_text(encoding="utf-8"), re.M)
    ]
    assert not missing, missing
