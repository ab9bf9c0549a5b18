import sys

from zoorepro.cli import main

sys.exit(main())
