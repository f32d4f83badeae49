"""Entry point of the frozen bundle: the ``lockdown`` command (PyInstaller runs this file)."""

import sys

from lockdown.cli import main

if __name__ == "__main__":
    sys.exit(main())
