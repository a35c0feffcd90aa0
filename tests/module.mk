# tests/: shared helpers (tests/lib) and the suites that belong to no single module.
-include tests/fuzz/module.mk
