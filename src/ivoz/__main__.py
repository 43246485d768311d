from ivoz.cli import main

raise SystemExit(main())
