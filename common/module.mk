# common/: what broker and client share (no dependency on any other ringlog layer).
COMMON_SRCS += common/err.c common/log.c
TESTS += $(BUILD)/tests/unit/test_err
