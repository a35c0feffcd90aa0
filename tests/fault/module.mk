# tests/fault/: fault injection in network namespaces and the history checker.
#   history    records produce attempts and reads; the checker (tests/fault/history.h)
#   test_history  the checker on hand-built histories, each anomaly planted (Criterion)
# The fault programs link their own archive ahead of the test libraries.
FAULT_SRCS := tests/fault/history.c tests/fault/netns.c tests/fault/cluster.c tests/fault/workload.c
LIB_FAULT := $(BUILD)/lib/librl_fault.a
$(LIB_FAULT): $(call obj,$(FAULT_SRCS))

FAULT_LINK_LIBS = $(LIB_FAULT) $(TEST_LINK_LIBS)
$(BUILD)/tests/fault/%: $(BUILD)/obj/tests/fault/%.o $(FAULT_LINK_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(FAULT_LINK_LIBS) $(DEPS_LIBS) $(CRITERION_LIBS)

TESTS += $(BUILD)/tests/fault/test_history

# The suites that run brokers in network namespaces (they need ringlogd in the build).
ifneq ($(filter $(BUILD)/bin/ringlogd,$(BINS)),)
TESTS += $(BUILD)/tests/fault/test_fault_single
endif
