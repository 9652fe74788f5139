import sys

from skyline_tui.worker.server import main

raise SystemExit(main(sys.argv[1:]))
