from morph.cli import main

raise SystemExit(main())
