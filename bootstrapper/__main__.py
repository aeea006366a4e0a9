from bootstrapper.cli import main

raise SystemExit(main())
