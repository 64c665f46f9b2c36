import sys

from deepfill.cli import main

sys.exit(main())
