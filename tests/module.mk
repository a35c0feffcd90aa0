# tests/: shared helpers (tests/lib) and the suites that belong to no single module.
include tests/fuzz/module.mk

# The broker's full validation of produced batches, end to end against a real ringlogd.
TESTS += $(BUILD)/tests/integration/test_produce_validation
TEST_DEPS += $(BUILD)/bin/ringlogd
