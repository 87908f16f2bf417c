"""``python -m bench.zoo record FILE…`` (``bench.zoo.main``)."""

from bench.zoo import main

raise SystemExit(main())
