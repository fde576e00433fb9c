"""The ``zg`` executable: ``zg version`` answers without loading the CLI framework (typer and
rich take ~0.2 s to import, more than everything else ``zg version`` does); every other command
line goes to :mod:`zgos.cli.main`."""

from __future__ import annotations

import sys

from zgos import version_text


def main() -> None:
    if sys.argv[1:] == ["version"]:
        print(version_text())
        return
    from zgos.cli.main import main as run_cli

    run_cli()
