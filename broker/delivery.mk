# broker/ delivery guarantees: idempotent-producer state (pstate) and, later, the group
# coordinator. Pure modules with no I/O, unit-tested on their own.
BROKER_SRCS += broker/pstate.c
TESTS += $(BUILD)/tests/unit/test_pstate
