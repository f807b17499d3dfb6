"""``python -m labkit.engine [--home DIR] [--foreground]``: run the engine."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import paths
from .daemon import daemonize, main

parser = argparse.ArgumentParser(prog="labkit-engine")
parser.add_argument("--home", type=Path, default=None)
parser.add_argument("--foreground", action="store_true")
args = parser.parse_args()
home = (args.home or paths.home()).absolute()
sys.exit(main(home) if args.foreground else daemonize(home))
