# ringlog: one non-recursive Makefile.
#
# Each subsystem folder holds a `module.mk` fragment that this file includes; fragments only
# append to the variables below and add rules for their own outputs, so the whole tree is one
# make graph (no recursive make, correct parallel builds, one dependency view).
#
#   make              build everything into build/
#   make test         every test suite; ends with "N passed, N failed" (SEED=N replays the
#                     random tests, TEST_TIMEOUT=S bounds each program; tests/run-tests.sh)
#   make test-asan    the same suites under ASan + UBSan (outputs in build/asan/)
#   make run          start ringlogd on 127.0.0.1 (Kafka clients: 127.0.0.1:9092), data in ./data
#   make bench        benchmarks (never part of make test)
#   make sim SEEDS=N  the raft simulator with N seeds per configuration
#   make fuzz         libFuzzer harnesses (clang), FUZZ_SECONDS each
#   make mutate       planted one-line bugs (tests/mutate/mutations.list) must each be caught
#   make install      PREFIX=/usr/local
#   make clean

BUILD ?= build
SAN ?=
PREFIX ?= /usr/local
Q ?= @

CC ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
        -Wno-unused-parameter
OPT := -O2 -g
SANFLAGS :=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
OPT := -O1 -g $(SANFLAGS)
endif
CFLAGS_ALL = -std=c17 -D_GNU_SOURCE -fPIC -fno-omit-frame-pointer $(OPT) $(WARN) -MMD -MP \
             -I. -I$(BUILD)/gen $(DEPS_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(EXTRA_LDFLAGS)

# Debian packages we build on. The included fragment is (re)made by tools/deps.sh, which
# installs whatever pkg-config cannot find and then prints the compiler and linker flags. GNU
# make remakes included makefiles before anything else, so a fresh machine gets its packages
# before the first compile.
DEPS_MK := $(BUILD)/deps.mk
ifeq ($(filter clean distclean,$(MAKECMDGOALS)),)
include $(DEPS_MK)
endif
$(DEPS_MK): tools/deps.sh
	@mkdir -p $(dir $@)
	$(Q)sh tools/deps.sh > $@.tmp && mv $@.tmp $@

# Variables the module fragments append to.
COMMON_SRCS :=
IO_SRCS :=
STORAGE_SRCS :=
REPL_SRCS :=
BROKER_SRCS :=
CLIENT_SRCS :=
PROTO_SRCS :=
GEN_HDRS :=
BINS :=
LIBS :=
TESTS :=
TEST_DEPS :=
BENCH_TARGETS :=
FUZZ_TARGETS :=

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# One static archive per layer; programs link the layers they may use (DESIGN's layering).
LIB_COMMON := $(BUILD)/lib/librl_common.a
LIB_IO := $(BUILD)/lib/librl_io.a
LIB_STORAGE := $(BUILD)/lib/librl_storage.a
LIB_REPL := $(BUILD)/lib/librl_replication.a
LIB_PROTO := $(BUILD)/lib/librl_proto.a
LIB_BROKER := $(BUILD)/lib/librl_broker.a
LIB_TESTLIB := $(BUILD)/lib/librl_testlib.a
# The client library's objects (client + common + proto, nothing of the broker) with every
# symbol visible, for the tests and the ringlog tool; the installed libringlog.a and
# libringlog.so, which export only the rl_ API, are made from the same objects in client/module.mk.
LIB_CLIENT_A := $(BUILD)/lib/librl_client.a
# Everything a test program may need, in link order (users before what they use).
TEST_LINK_LIBS = $(LIB_TESTLIB) $(LIB_BROKER) $(LIB_CLIENT_A) $(LIB_REPL) $(LIB_STORAGE) \
                 $(LIB_IO) $(LIB_PROTO) $(LIB_COMMON)
TESTLIB_SRCS :=

# A missing fragment is an error, not a quietly smaller build (and a smaller make test).
include common/module.mk
include io/module.mk
include proto/module.mk
include storage/module.mk
include replication/module.mk
include broker/module.mk
include broker/kafka/module.mk
include client/module.mk
include tests/module.mk
include tests/fault/module.mk
include bench/module.mk

COMMON_OBJS := $(call obj,$(COMMON_SRCS))
IO_OBJS := $(call obj,$(IO_SRCS))
STORAGE_OBJS := $(call obj,$(STORAGE_SRCS))
REPL_OBJS := $(call obj,$(REPL_SRCS))
BROKER_OBJS := $(call obj,$(BROKER_SRCS))
CLIENT_OBJS := $(call obj,$(CLIENT_SRCS))
PROTO_OBJS := $(call obj,$(PROTO_SRCS))

TESTLIB_OBJS := $(call obj,$(TESTLIB_SRCS))

$(LIB_COMMON): $(COMMON_OBJS)
$(LIB_IO): $(IO_OBJS)
$(LIB_STORAGE): $(STORAGE_OBJS)
$(LIB_REPL): $(REPL_OBJS)
$(LIB_PROTO): $(PROTO_OBJS)
$(LIB_BROKER): $(BROKER_OBJS)
$(LIB_TESTLIB): $(TESTLIB_OBJS)
$(LIB_CLIENT_A): $(CLIENT_OBJS) $(COMMON_OBJS) $(PROTO_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/lib/librl_%.a:
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Test programs: tests/unit/NAME.c -> $(BUILD)/tests/unit/NAME (Criterion), and likewise for
# tests/integration/ and tests/sim/. A fragment lists the program in TESTS; this rule builds it.
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_LINK_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(TEST_LINK_LIBS) $(DEPS_LIBS) $(CRITERION_LIBS)

$(BUILD)/obj/%.o: %.c | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/obj/$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -c $< -o $@

# Keep objects of test programs (make would delete them as intermediates).
.SECONDARY:
.DEFAULT_GOAL := all
.PHONY: all test test-asan run run-cluster bench sim fuzz install clean deps
all: $(BINS) $(LIBS)

deps: $(DEPS_MK)

# No suite may leave make test silently: every test source must be registered as a program
# (tests/unit, tests/integration, tests/sim and tests/fault: test_NAME.c or .sh -> test_NAME;
# tests/fuzz: fuzz_NAME.c -> replay_NAME), and every fragment in the tree must be included, or
# make stops here and names them. (Suites sit behind conditionals in their fragments; a
# condition that stops holding must not drop them unnoticed.)
EXPECTED_TESTS := \
    $(patsubst %.c,$(BUILD)/%,$(wildcard tests/unit/test_*.c tests/integration/test_*.c \
                                          tests/sim/test_*.c tests/fault/test_*.c)) \
    $(patsubst %.sh,$(BUILD)/%,$(wildcard tests/integration/test_*.sh)) \
    $(patsubst tests/fuzz/fuzz_%.c,$(BUILD)/tests/fuzz/replay_%,$(wildcard tests/fuzz/fuzz_*.c))
MISSING_TESTS := $(filter-out $(TESTS),$(EXPECTED_TESTS))
FRAGMENTS := $(filter-out build/% $(BUILD)/%,$(wildcard */*.mk */*/*.mk))
MISSING_FRAGMENTS := $(filter-out $(MAKEFILE_LIST),$(FRAGMENTS))
ifeq ($(filter clean distclean,$(MAKECMDGOALS)),)
ifneq ($(MISSING_TESTS),)
$(error these test suites have sources but are not in TESTS, so make test would skip them: \
    $(MISSING_TESTS); register each in its module.mk (TESTS += ...), and check the \
    conditions around it)
endif
ifneq ($(MISSING_FRAGMENTS),)
$(error these build fragments are never included: $(MISSING_FRAGMENTS); add them to the \
    include list of the top Makefile)
endif
endif

# The runner executes every test program, each printing its own tally, and sums them; a hung
# program fails by name after TEST_TIMEOUT seconds (default 600), one that runs no test fails,
# and SEED=N replays every random test of a run (tests/run-tests.sh, tests/lib/tl_seed.h).
test: $(TESTS) $(TEST_DEPS)
	$(Q)BUILD=$(BUILD) $(if $(SEED),RINGLOG_SEED=$(SEED)) \
	    $(if $(TEST_TIMEOUT),TEST_TIMEOUT=$(TEST_TIMEOUT)) sh tests/run-tests.sh $(TESTS)

# Sanitized programs run several times slower (test_sim: about 5 minutes on a loaded 2-core
# machine), so each gets 30 minutes unless TEST_TIMEOUT says otherwise.
# The power-cut suites run thousands of seeds in make test; sanitized, 200 seeds find what the
# instrumentation can (memory errors on the recovery paths) in a fraction of the time. Criterion
# itself leaks one 48-byte block in suites with long per-test timeouts (tests/lsan.supp).
test-asan:
	$(Q)RINGLOG_POWERCUT_SEEDS=200 RINGLOG_IDEM_POWERCUT_SEEDS=200 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	    $(MAKE) --no-print-directory BUILD=build/asan SAN=1 \
	    TEST_TIMEOUT=$(if $(TEST_TIMEOUT),$(TEST_TIMEOUT),1800) test

run: all
	mkdir -p data
	$(BUILD)/bin/ringlogd --data-dir ./data --kafka-listen 127.0.0.1:9092

# Three nodes as one cluster (9400/9410/9420, HTTP +1), logs prefixed by node; Ctrl-C stops all.
run-cluster: all
	tools/run-cluster.sh $(BUILD)/bin/ringlogd

# Benchmarks run one at a time (they measure the same disk and cores), and the broker's
# end-to-end bench runs last so its summary line ends the output.
bench:
	$(Q)for t in $(filter-out bench-client,$(BENCH_TARGETS)) \
	    $(filter bench-client,$(BENCH_TARGETS)); do \
	    $(MAKE) --no-print-directory $$t || exit 1; done

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
