"""`fmnist` in a child process that accepts the small test dataset.

The tests' small IDX files have their own checksums; the small_data fixture passes them
in $FMNIST_TEST_FILES, and this script installs them as fmnist.data.FILES before running
the command line with its arguments.
"""

import json
import os
import sys

from fmnist import data
from fmnist.cli import main

data.FILES = {key: data.DataFile(name, sha256, tuple(shape))
              for key, (name, sha256, shape) in json.loads(os.environ["FMNIST_TEST_FILES"]).items()}  # fmt: skip
sys.exit(main(sys.argv[1:]))
