"""``make specs``: regenerate what is derived from the code (``python -m gradhub.generate [specs/]``).

* ``specs/*.schema.json``: the JSON Schemas of the spec models (:func:`gradhub.specs.json_schemas`);
* the tables of checks in ``specs/plugin-protocol.md`` (from the suite's check definitions);
* ``gradhub/_firstparty.py``: the first-party index, from the entry points under ``plugins/``.

Tests fail when any of them is stale. Kept apart from :mod:`gradhub.specs` so that the spec
models never import the suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gradhub.specs import first_party_index, protocol_with_checks, render_first_party, write_json_schemas
from gradhub.testing._suite import checks_markdown


def main(folder: Path) -> None:
    for path in write_json_schemas(folder):
        print(f"wrote {path}")
    protocol = folder / "plugin-protocol.md"
    protocol.write_text(protocol_with_checks(protocol.read_text(), checks_markdown()))
    print(f"wrote the tables of checks into {protocol}")
    first_party = Path(__file__).with_name("_firstparty.py")
    first_party.write_text(render_first_party(first_party_index(folder.parent / "plugins")))
    print(f"wrote {first_party}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "specs"))
