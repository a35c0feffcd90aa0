# broker/: ringlogd (the native protocol server, topics, HTTP admin and metrics).
BROKER_SRCS += broker/config.c broker/metalog.c broker/topics.c \
               broker/shard.c broker/api.c broker/http.c

# Shared test helpers (tests/lib): broker processes and a blocking protocol client.
TESTLIB_SRCS += tests/lib/tl_broker.c tests/lib/tl_client.c

TESTS += $(BUILD)/tests/unit/test_frame $(BUILD)/tests/unit/test_config \
         $(BUILD)/tests/unit/test_broker_metalog

# libFuzzer harness for frame and request decoding (tests/fuzz/module.mk builds and replays it).
FUZZ_HARNESSES += frame
FUZZ_FLAGS_frame := -max_len=65536

# ringlogd links the partition log, so it (and the suites that run it) join the build once
# storage/ builds plog (storage/module.mk is included before this fragment).
ifneq ($(filter storage/plog.c,$(STORAGE_SRCS)),)
BINS += $(BUILD)/bin/ringlogd
$(BUILD)/bin/ringlogd: $(BUILD)/obj/broker/ringlogd.o $(LIB_BROKER) $(LIB_STORAGE) $(LIB_IO) \
                       $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB_BROKER) $(LIB_STORAGE) $(LIB_IO) $(LIB_PROTO) $(LIB_COMMON) \
	    $(DEPS_LIBS)

TESTS += $(BUILD)/tests/integration/test_broker $(BUILD)/tests/integration/test_broker_badinput \
         $(BUILD)/tests/integration/test_broker_restart $(BUILD)/tests/integration/test_broker_chaos \
         $(BUILD)/tests/integration/test_broker_datadir
TEST_DEPS += $(BUILD)/bin/ringlogd

# `make bench-broker`: the broker measured with the thinnest client (bench/bench_broker.c).
BENCH_BROKER := $(BUILD)/bench/bench_broker
$(BENCH_BROKER): $(BUILD)/obj/bench/bench_broker.o $(BUILD)/obj/bench/bench_disk.o \
                 $(LIB_TESTLIB) $(LIB_BROKER) $(LIB_IO) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIB_TESTLIB) $(LIB_BROKER) $(LIB_IO) \
	    $(LIB_PROTO) $(LIB_COMMON) $(DEPS_LIBS)
.PHONY: bench-broker
bench-broker: $(BENCH_BROKER) $(BUILD)/bin/ringlogd
	RINGLOGD=$(BUILD)/bin/ringlogd $(BENCH_BROKER) $(BENCH_BROKER_ARGS)
BENCH_TARGETS += bench-broker
endif
