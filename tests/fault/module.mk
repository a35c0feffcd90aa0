# tests/fault/: fault injection in network namespaces and the history checker.
#   history    records produce attempts and reads; the checker (tests/fault/history.h)
#   netns      the lab: a sandbox namespace with no route out, hosts on a bridge, net faults
#   cluster    ringlogd brokers in the lab's hosts; kill, pause, restart, slow disk
#   workload   producers and consumers in hosts recording the history; drain, dumps, verify
#   nemesis    seeded random fault schedules;  scenario  one run from start to verdict
#   test_history        the checker on hand-built histories, each anomaly planted (Criterion)
#   test_fault_single   the lab proven on one broker (runs today)
#   test_fault_cluster  3 brokers as one cluster under a nemesis (skipped until --voters)
#   soak                make soak: random schedules for SOAK_MINUTES
# The fault programs link their own archive ahead of the test libraries.
FAULT_SRCS := tests/fault/history.c tests/fault/netns.c tests/fault/cluster.c \
              tests/fault/workload.c tests/fault/nemesis.c tests/fault/scenario.c
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
TESTS += $(BUILD)/tests/fault/test_fault_single $(BUILD)/tests/fault/test_fault_cluster

# make soak SOAK_MINUTES=N [SOAK_SEED=S] [SOAK_ARGS="--brokers 1 --steps 10"]: random fault
# schedules for N minutes; the seed and the command that replays it are printed first.
SOAK_MINUTES ?= 5
.PHONY: soak
soak: $(BUILD)/tests/fault/soak $(BUILD)/bin/ringlogd
	$(BUILD)/tests/fault/soak --minutes $(SOAK_MINUTES) $(if $(SOAK_SEED),--seed $(SOAK_SEED)) \
	    $(SOAK_ARGS)
endif
