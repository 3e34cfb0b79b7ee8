"""chatd's tests: one folder per package, and e2e/ for the real twistd with real clients."""
