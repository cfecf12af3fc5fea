from lxcow.cli import main

raise SystemExit(main())
