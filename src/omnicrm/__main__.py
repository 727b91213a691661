"""``python -m omnicrm`` is the ``omnicrm`` command."""

from omnicrm.cli.main import main

main()
