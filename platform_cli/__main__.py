"""``python -m platform_cli``: the same entry point as the ``monai-platform`` console script."""

import sys

from platform_cli.main import main

sys.exit(main())
