# broker/ delivery guarantees: idempotent-producer state (pstate) and the consumer-group
# membership state machine (group). Pure modules with no I/O, unit-tested on their own.
BROKER_SRCS += broker/pstate.c broker/group.c
TESTS += $(BUILD)/tests/unit/test_pstate $(BUILD)/tests/unit/test_group
