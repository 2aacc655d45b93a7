"""``python -m ncodec.eval image|audio|video DIR ...`` (same options as ``ncodec eval``)."""

import sys

from .cli import main

sys.exit(main())
