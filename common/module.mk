# common/: what broker and client share (no dependency on any other ringlog layer).
COMMON_SRCS += common/err.c common/log.c common/arena.c
TESTS += $(BUILD)/tests/unit/test_err

# The batch codec (built by clients, checked by the broker and storage) and its varints.
COMMON_SRCS += common/varint.c common/batch.c
# On x86-64, XXH3 is also built for AVX2 in its own file and chosen at run time by CPU, so
# checksums of large batches run at about twice the baseline (SSE2) speed without requiring
# AVX2 from the machine. Same checksum value either way.
ifeq ($(shell uname -m),x86_64)
COMMON_SRCS += common/batch_xxh3_avx2.c
$(BUILD)/obj/common/batch_xxh3_avx2.o: private EXTRA_CFLAGS += -mavx2
$(BUILD)/obj/common/batch.o: private EXTRA_CFLAGS += -DRL_HAVE_XXH3_AVX2
endif
TESTS += $(BUILD)/tests/unit/test_varint $(BUILD)/tests/unit/test_batch

# make bench-batch: codec build/validate throughput next to memcpy in the same run.
BENCH_TARGETS += bench-batch
.PHONY: bench-batch
$(BUILD)/bench/bench_batch: $(BUILD)/obj/bench/bench_batch.o $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEPS_LIBS)
bench-batch: $(BUILD)/bench/bench_batch
	$(BUILD)/bench/bench_batch
