import sys

from sdpg_train.cli import main

sys.exit(main())
