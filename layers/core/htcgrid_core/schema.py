"""Publish the grid's documents as JSON Schema: ``python -m htcgrid_core.schema docs/schema``.

Any AWS SDK in any language can then build submissions and read results without this package.
A test keeps the published files equal to what the models generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from htcgrid_core.models import PUBLISHED_DOCUMENTS


def schemas() -> dict[str, str]:
    """File name -> JSON Schema text, for every published document."""
    return {
        f"{model.__name__}.schema.json": json.dumps(model.model_json_schema(), indent=2) + "\n"
        for model in PUBLISHED_DOCUMENTS
    }


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schema")):
        print(path)
