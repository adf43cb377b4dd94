from vmbake.cli import main

raise SystemExit(main())
