from toykit.train import main

raise SystemExit(main())
