"""Entry point of the bundle's second executable, ``lockdown-display-helper`` (runs as
root through pkexec; see docs/display-isolation.md): the privileged display helper."""

import sys

from lockdown.platform.display_helper import main

if __name__ == "__main__":
    sys.exit(main())
