"""``python -m trainer.proof``."""

import sys

from trainer.proof.cli import main

sys.exit(main())
