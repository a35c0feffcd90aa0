# broker/ delivery guarantees: idempotent-producer state (pstate), the consumer-group membership
# state machine (group) and committed offsets (offsets). Pure modules with no I/O, each
# unit-tested on its own.
BROKER_SRCS += broker/pstate.c broker/group.c broker/offsets.c broker/idempotence.c \
               broker/coordinator.c broker/delivery.c
TESTS += $(BUILD)/tests/unit/test_pstate $(BUILD)/tests/unit/test_group \
         $(BUILD)/tests/unit/test_offsets

# Integration suites of the delivery guarantees (real ringlogd processes, tests/lib client).
ifneq ($(filter storage/plog.c,$(STORAGE_SRCS)),)
TESTS += $(BUILD)/tests/integration/test_idempotence $(BUILD)/tests/integration/test_groups

# `make bench-idempotence`: produce throughput with idempotence off and on in one run.
BENCH_IDEM := $(BUILD)/bench/bench_idempotence
$(BENCH_IDEM): $(BUILD)/obj/bench/bench_idempotence.o $(LIB_TESTLIB) $(LIB_BROKER) $(LIB_IO) \
               $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIB_TESTLIB) $(LIB_BROKER) $(LIB_IO) \
	    $(LIB_PROTO) $(LIB_COMMON) $(DEPS_LIBS)
.PHONY: bench-idempotence
bench-idempotence: $(BENCH_IDEM) $(BUILD)/bin/ringlogd
	RINGLOGD=$(BUILD)/bin/ringlogd $(BENCH_IDEM) $(BENCH_IDEM_ARGS)
BENCH_TARGETS += bench-idempotence
endif
