# storage/: the partition log (segments, indexes, io_uring writer, recovery, retention), and the
# I/O layer it stands on (common/io.c lives with common/ but is built from here).
COMMON_SRCS += common/io.c
TESTS += $(BUILD)/tests/unit/test_io
STORAGE_SRCS += storage/segment.c storage/fcache.c storage/bio.c storage/checkpoint.c \
                storage/plog.c storage/plog_write.c storage/plog_read.c
TESTS += $(BUILD)/tests/unit/test_storage
