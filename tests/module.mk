# tests/: shared helpers (tests/lib) and the suites that belong to no single module.
include tests/fuzz/module.mk

# The broker's full validation of produced batches, end to end against a real ringlogd.
TESTS += $(BUILD)/tests/integration/test_produce_validation
TEST_DEPS += $(BUILD)/bin/ringlogd

# make mutate: every planted one-line bug of tests/mutate/mutations.list (format at its top) is
# applied to a mirror of the tree ($(BUILD)/mutate/tree), built incrementally, and must be
# caught by the suites named for it (tools/mutate.sh). MUTANTS="a b" runs only those.
.PHONY: mutate
mutate:
	$(Q)BUILD=$(BUILD) MUTATE_TESTS="$(TESTS)" MUTATE_DEPS="$(TEST_DEPS)" \
	    sh tools/mutate.sh $(MUTANTS)
