# storage/: the partition log (segments, indexes, io_uring writer, recovery, retention), and the
# I/O layer it stands on (common/io.c lives with common/ but is built from here).
COMMON_SRCS += common/io.c
TESTS += $(BUILD)/tests/unit/test_io
