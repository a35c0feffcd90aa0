# storage/: the partition log (segments, indexes, io_uring writer, recovery, retention).
STORAGE_SRCS += storage/segment.c storage/fcache.c storage/bio.c storage/checkpoint.c \
                storage/plog_recover.c storage/plog_bg.c \
                storage/plog.c storage/plog_write.c storage/plog_read.c storage/tcache.c
TESTS += $(BUILD)/tests/unit/test_storage $(BUILD)/tests/unit/test_storage_sim

# The storage benchmark: disk limit vs plog appends, group commit vs raw fdatasync.
BENCH_TARGETS += bench-storage
$(BUILD)/bench/bench_storage: $(BUILD)/obj/bench/bench_storage.o $(LIB_STORAGE) $(LIB_IO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB_STORAGE) $(LIB_IO) $(LIB_COMMON) $(DEPS_LIBS)
.PHONY: bench-storage
bench-storage: $(BUILD)/bench/bench_storage
	$(BUILD)/bench/bench_storage
TESTS += $(BUILD)/tests/unit/test_storage_recovery $(BUILD)/tests/unit/test_storage_recovery_sim
TESTS += $(BUILD)/tests/integration/test_crash_plog
TESTS += $(BUILD)/tests/unit/test_storage_many
TESTS += $(BUILD)/tests/unit/test_storage_format
TESTS += $(BUILD)/tests/unit/test_tcache
TESTS += $(BUILD)/tests/unit/test_plog_reset $(BUILD)/tests/unit/test_plog_reset_sim

# The recovery fuzz harness (tests/fuzz/module.mk builds, replays and fuzzes it).
FUZZ_HARNESSES += recovery
FUZZ_FLAGS_recovery := -max_len=16384
.PHONY: fuzz-corpus-recovery
fuzz-corpus-recovery: $(BUILD)/tests/fuzz/gen_corpus_recovery
	mkdir -p tests/fuzz/corpus/recovery
	$(BUILD)/tests/fuzz/gen_corpus_recovery tests/fuzz/corpus/recovery

# Seeded power cuts on the simulated back-end (5,000 seeds in make test; more with
# make test-powercut POWERCUT_SEEDS=N).
TESTS += $(BUILD)/tests/unit/test_storage_powercut
POWERCUT_SEEDS ?= 100000
.PHONY: test-powercut
test-powercut: $(BUILD)/tests/unit/test_storage_powercut
	RINGLOG_POWERCUT_SEEDS=$(POWERCUT_SEEDS) $(BUILD)/tests/unit/test_storage_powercut
