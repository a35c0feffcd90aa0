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
endif
