from rsu.cli.main import main

raise SystemExit(main())
