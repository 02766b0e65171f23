"""mkdocs hook: the site is the repository's tree of Markdown, so a link that works on the
repository's own pages works on the site, unchanged, and mkdocs checks it.

The pages live where they are written: `docs/*.md`, and the READMEs next to the code they describe
(`README.md`, `compute/eks/README.md`, `local/README.md`, `examples/**/README.md`...). Their links
are relative to their place in the repository (`../../../docs/runtimes.md`,
`../examples/runtimes/quantlib/README.md`). mkdocs reads only `docs_dir`, so this hook puts every
file of `docs/` at `docs/<path>` in the site's tree and adds each README at its own path: the
relative links then resolve as they do in the repository, `mkdocs build --strict` fails on any
that does not, and no page is copied or rewritten by hand. A README becomes its folder's index
(`examples/runtimes/quantlib/`), the root README the home page.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mkdocs.structure.files import File, Files

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig

#: Folders whose READMEs (at any depth) are pages of the site, with the root README.
README_ROOTS = ("compute", "local", "examples", "bench")
#: Folders never searched: tool environments, build output, installed packages.
SKIPPED_PARTS = frozenset({"node_modules", "build", "site"})


def repository_root(config: MkDocsConfig) -> Path:
    """The folder of mkdocs.yml: the repository's root."""
    return Path(config.config_file_path).resolve().parent


def readmes(root: Path) -> list[Path]:
    """Every README.md outside docs/ that is a page: the root's, and those under README_ROOTS,
    skipping hidden folders (.venv, .tools) and build or package folders."""
    found = [root / "README.md"]
    for top in README_ROOTS:
        for path in sorted((root / top).rglob("README.md")):
            parts = path.relative_to(root).parts[:-1]
            if not any(part.startswith(".") or part in SKIPPED_PARTS for part in parts):
                found.append(path)
    return found


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """The docs under `docs/`, and the READMEs at their paths in the repository."""
    root = repository_root(config)
    docs_dir = Path(config.docs_dir).resolve()
    docs = docs_dir.relative_to(root).as_posix()
    tree = Files([])
    for file in files:
        source = file.abs_src_path
        in_docs = file.src_dir is not None and Path(file.src_dir).resolve() == docs_dir
        if source is not None and in_docs:
            tree.append(
                File.generated(
                    config, f"{docs}/{file.src_uri}", abs_src_path=source, inclusion=file.inclusion
                )
            )
        else:  # the theme's files and those plugins made keep their place
            tree.append(file)
    for readme in readmes(root):
        tree.append(
            File.generated(config, readme.relative_to(root).as_posix(), abs_src_path=str(readme))
        )
    return tree
