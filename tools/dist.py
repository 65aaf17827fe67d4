"""Build the core and every plugin as wheels and sdists, check them, and write a PEP 503 index.

    python tools/dist.py                          # everything into dist/ (what `make dist` runs)
    python tools/dist.py --out /tmp/w gradhub gradhub-adamp   # only these distributions

What it writes into ``--out`` (default ``dist/``):

* ``<name>-<version>-py3-none-any.whl`` and ``<name>-<version>.tar.gz`` for each distribution,
  built by ``python -m build`` without isolation (the build backend, setuptools, comes from the
  running environment, so no network is needed for the build itself);
* the wheels of their runtime dependencies except torch (pydantic, pluggy, tqdm, ninja, numpy
  and what those need), fetched by ``pip download`` for this machine's platform and Python:
  the folder is a self-sufficient wheelhouse for an environment that already has torch;
* ``simple/``: a PEP 503 "simple" index over every file of the folder (one page per project,
  links relative, each with its ``#sha256=`` digest), so that

      pip install --index-url file:///abs/path/dist/simple gradhub-adamp

  installs from the folder alone. torch is left out on purpose: the build a user needs (CPU,
  CUDA 12.x, ROCm) is theirs to choose, and it comes from download.pytorch.org, not from us.

Then ``twine check`` runs on every built file (metadata and README rendering, as PyPI would
check them). Any failure stops with a non-zero exit status and says which distribution failed.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = {"torch"}
"""Requirements a user brings: never downloaded into the wheelhouse."""


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions() -> dict[str, Path]:
    """Every distribution of the repository: the core and each plugin, by project name."""
    found = {}
    for pyproject in [ROOT / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]:
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        found[name] = pyproject.parent
    return found


def runtime_requirements(folders: list[Path]) -> list[str]:
    """Runtime requirements of these distributions, less our own and what the user brings."""
    ours = set(map(normalize, distributions()))
    wanted: list[str] = []
    for folder in folders:
        for requirement in tomllib.loads((folder / "pyproject.toml").read_text())["project"].get("dependencies", []):
            name = normalize(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])
            if name not in ours and name not in LEFT_OUT and requirement not in wanted:
                wanted.append(requirement)
    return wanted


def run(command: list[str], what: str) -> None:
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(
            f"dist: {what} failed (exit {completed.returncode}):\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
        )


def write_index(out: Path) -> Path:
    """A PEP 503 simple index over every wheel and sdist in ``out``; returns its root."""
    simple = out / "simple"
    if simple.exists():
        shutil.rmtree(simple)
    projects: dict[str, list[Path]] = {}
    for path in sorted(out.iterdir()):
        if path.suffix == ".whl":
            project = path.name.split("-")[0]
        elif path.name.endswith(".tar.gz"):
            project = path.name[: -len(".tar.gz")].rsplit("-", 1)[0]
        else:
            continue
        projects.setdefault(normalize(project), []).append(path)
    for project, files in projects.items():
        page = simple / project
        page.mkdir(parents=True)
        links = "\n".join(
            f'    <a href="../../{html.escape(file.name)}#sha256={hashlib.sha256(file.read_bytes()).hexdigest()}">'
            f"{html.escape(file.name)}</a><br>"
            for file in files
        )
        (page / "index.html").write_text(
            f"<!DOCTYPE html>\n<html>\n  <head><title>Links for {project}</title></head>\n  <body>\n"
            f"    <h1>Links for {project}</h1>\n{links}\n  </body>\n</html>\n"
        )
    listing = "\n".join(f'    <a href="{name}/">{name}</a><br>' for name in sorted(projects))
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html>\n  <head><title>Simple index</title></head>\n  <body>\n"
        f"{listing}\n  </body>\n</html>\n"
    )
    return simple


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="distributions to build (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--no-dependencies", action="store_true", help="do not download dependency wheels")
    args = parser.parse_args(argv)
    known = distributions()
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown distribution(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = {name: known[name] for name in args.names} if args.names else known
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    built: list[Path] = []
    for name, folder in chosen.items():
        before = set(out.iterdir())
        byproducts = set(folder.glob("*.egg-info")) | {folder / "build"}
        existing = {path for path in byproducts if path.exists()}
        run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(folder)], f"building {name}")
        built += sorted(set(out.iterdir()) - before)
        for leftover in (set(folder.glob("*.egg-info")) | {folder / "build"}) - existing:
            shutil.rmtree(leftover, ignore_errors=True)  # the build's own byproducts, not the checkout's
        print(f"built {name}")
    run([sys.executable, "-m", "twine", "check", "--strict", *map(str, built)], "twine check")
    print(f"twine check: {len(built)} files pass")
    requirements = runtime_requirements(list(chosen.values()))
    if requirements and not args.no_dependencies:
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--dest",
                str(out),
                *requirements,
            ],
            "downloading the dependencies' wheels",
        )
        # pip download follows dependencies; torch must not ride along with one of them.
        for path in out.glob("torch-*.whl"):
            path.unlink()
        print(f"dependencies: {', '.join(requirements)} (and what they need)")
    simple = write_index(out)
    print(f"index: {simple.as_uri()}")
    print(f"install: pip install --index-url {simple.as_uri()} gradhub-<slug>   (torch first, your build)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
