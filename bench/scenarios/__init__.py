"""The benchmark sections, one module per ``--only`` value: each measures its scenarios beside a
same-run baseline and returns result rows (run by :mod:`bench.suite`)."""
