import sys

from kubeling.cli import main

sys.exit(main())
