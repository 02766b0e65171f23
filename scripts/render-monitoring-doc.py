"""Rewrite the metric tables of docs/monitoring.md from the metrics catalogue
(``htcgrid_core.metrics_catalogue``); tests/unit/test_metrics_catalogue.py checks they match."""

from __future__ import annotations

import re
from pathlib import Path

from htcgrid_core.metrics_catalogue import render_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "monitoring.md"
BEGIN = "<!-- generated from the metrics catalogue by scripts/render-monitoring-doc.py -->\n"
END = "<!-- end of the metrics catalogue -->"


def main() -> None:
    text = PAGE.read_text()
    section = re.escape(BEGIN) + ".*?" + re.escape(END)
    PAGE.write_text(re.sub(section, lambda _: BEGIN + render_markdown() + END, text, flags=re.S))


if __name__ == "__main__":
    main()
