"""``python -m ncodec`` is the ``ncodec`` command."""

from ncodec.codec.cli import main

raise SystemExit(main())
