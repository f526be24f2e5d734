from synapse_core.cli import main

raise SystemExit(main())
