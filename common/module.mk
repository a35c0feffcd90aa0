# common/: what broker and client share (no dependency on any other ringlog layer).
COMMON_SRCS += common/err.c common/log.c
TESTS += $(BUILD)/tests/unit/test_err

# The batch codec (built by clients, checked by the broker and storage) and its varints.
COMMON_SRCS += common/varint.c common/batch.c
TESTS += $(BUILD)/tests/unit/test_varint $(BUILD)/tests/unit/test_batch
