from skyline_tui.cli import main

raise SystemExit(main())
