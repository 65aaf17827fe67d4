import sys

from gradhub.cli import main

sys.exit(main())
