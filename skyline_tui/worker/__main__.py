import os
import sys

from skyline_tui.worker.server import main

code = main(sys.argv[1:])
# Skip the interpreter's teardown: with torch loaded it takes a second or more (module and C++ static
# destructors), it owns nothing to flush but these two streams, and the parent waits for this exit.
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
