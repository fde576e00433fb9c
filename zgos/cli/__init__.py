"""``zg``: the command line of zgos, the top layer.

- :mod:`zgos.cli.entry` is the ``zg`` executable (``zg version`` answers without typer);
- :mod:`zgos.cli.main` is the root group, loading each command group only when it runs;
- :mod:`zgos.cli.context` is what every command receives (data dir, chain, account);
- :mod:`zgos.cli.chain`, :mod:`zgos.cli.devnet` and :mod:`zgos.cli.explorer` are the groups of the
  layers that the CLI context itself uses (the chain) or that use every network (the devnet and
  its explorer), so they sit here; each network keeps its own commands beside it (``<network>/cli``).

``python -m zgos.cli`` runs ``zg`` (:mod:`zgos.cli.__main__`); this package imports nothing.
"""
