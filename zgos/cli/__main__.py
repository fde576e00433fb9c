"""``python -m zgos.cli ARGS``: ``zg ARGS`` (how the devnet and the tests start services)."""

from zgos.cli.main import main

main()
