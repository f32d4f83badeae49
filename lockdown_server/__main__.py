"""``python -m lockdown_server``: the ``lockdown-server`` command."""

import sys

from lockdown_server.cli import main

sys.exit(main())
