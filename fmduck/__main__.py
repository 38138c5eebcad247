import sys

from fmduck.cli import main

sys.exit(main())
