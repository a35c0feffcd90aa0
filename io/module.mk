# io/: the I/O layer every file, socket, timer and clock access goes through (io_uring back-end).
# It is its own archive so that what needs no I/O (libringlog, the codec tools) never links
# liburing.
IO_SRCS += io/io.c
TESTS += $(BUILD)/tests/unit/test_io
IO_SRCS += io/io_file.c io/io_sim.c
