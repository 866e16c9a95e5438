from wopr_platform.cli import main

raise SystemExit(main())
