"""``python -m lockdown`` runs the ``lockdown`` command."""

import sys

from lockdown.cli import main

sys.exit(main())
