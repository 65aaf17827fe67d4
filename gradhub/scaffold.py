"""``gradhub new``: write a plugin package that installs and passes ``gradhub check`` as generated.

The package holds a small working method of the requested kind (templates in
``gradhub/templates/<kind>/``), its torch-free entry module declaring the method once (its spec), a real
correctness test and the conformance suite as a pytest test. Its author replaces the
method with the paper's and keeps both green.
"""

from __future__ import annotations

import datetime
import keyword
import re
from importlib.resources import files
from pathlib import Path
from string import Template

from gradhub.errors import UnsupportedInputError
from gradhub.registry import KINDS, NAME_PATTERN

_SLUG = re.compile(NAME_PATTERN)

# template file -> path in the generated package (``{module}`` is substituted)
_LAYOUT = {
    "common/pyproject.toml.tmpl": "pyproject.toml",
    "common/README.md.tmpl": "README.md",
    "common/CHANGELOG.md.tmpl": "CHANGELOG.md",
    "common/test_conformance.py.tmpl": "tests/test_conformance.py",
    "{kind}/__init__.py.tmpl": "{module}/__init__.py",
    "{kind}/method.py.tmpl": "{module}/method.py",
    "{kind}/test_method.py.tmpl": "tests/test_method.py",
}


def _names(slug: str, kind: str) -> dict[str, str]:
    import gradhub

    words = re.split(r"[-_]", slug)
    major, minor = (int(part) for part in gradhub.__version__.split(".")[:2])
    return {
        "name": slug,
        "kind": kind,
        "distribution": "gradhub-" + slug.replace("_", "-"),
        "module": "gradhub_" + slug.replace("-", "_"),
        "Class": "".join(word.capitalize() for word in words),
        "SPEC": "_".join(words).upper(),
        "function": "_".join(words),
        "title": " ".join(word.capitalize() for word in words),
        "year": str(datetime.date.today().year),
        "gradhub_floor": f"{major}.{minor}",
        "gradhub_ceiling": f"{major}.{minor + 1}",
    }


def _file_in_the_way(path: Path) -> Path | None:
    """The file (not a folder) at ``path`` or at its nearest existing ancestor, if any."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def create_plugin(slug: str, kind: str, directory: str | Path = ".") -> Path:
    """Write the package ``<directory>/gradhub-<slug>/`` and return its path."""
    if not isinstance(slug, str) or not _SLUG.match(slug) or keyword.iskeyword(slug.replace("-", "_")):
        raise UnsupportedInputError(
            "gradhub new", "slug", repr(slug), "use lower-case letters and digits, words joined by '-' or '_'"
        )
    if kind not in KINDS:
        raise UnsupportedInputError("gradhub new", "kind", repr(kind), f"choose one of {', '.join(KINDS)}")
    names = _names(slug, kind)
    root = Path(directory) / names["distribution"]
    blocker = _file_in_the_way(root)
    if blocker is not None:
        raise UnsupportedInputError(
            "gradhub new", "target folder", f"{root} ({blocker} is a file)", "choose another --dir"
        )
    if root.exists() and any(root.iterdir()):
        raise UnsupportedInputError(
            "gradhub new", "target folder", str(root), "it must not exist or be empty; choose another --dir"
        )
    templates = files("gradhub") / "templates"
    for source, destination in _LAYOUT.items():
        text = (templates / source.format(kind=kind)).read_text()
        path = root / destination.format(module=names["module"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(names))
    return root
