# client/: libringlog (static and shared) and the `ringlog` command-line tool.
# The library is client + common + proto objects only (DESIGN's layering: nothing of storage or
# the broker); the shared object exports just the rl_ API (libringlog.map) and links with
# -z defs so a missing dependency fails the build instead of the user's program.
CLIENT_SRCS += client/config.c client/error.c client/partition.c client/json.c client/conn.c client/meta.c \
               client/producer.c client/consumer.c client/group.c client/admin.c

# The file is named by its soname (what programs load); libringlog.so is the link-time symlink.
LIB_CLIENT_SO := $(BUILD)/lib/libringlog.so
LIB_CLIENT_SO0 := $(BUILD)/lib/libringlog.so.0
CLIENT_SO_OBJS := $(call obj,$(CLIENT_SRCS) $(COMMON_SRCS) $(PROTO_SRCS))
# Linked with what the client uses only (CLIENT_DEPS_LIBS: no liburing, no Kafka codecs), and
# --as-needed so a library nothing calls into is not recorded as a dependency.
$(LIB_CLIENT_SO0): $(CLIENT_SO_OBJS) client/libringlog.map
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) -shared -Wl,-soname,libringlog.so.0 -Wl,--version-script=client/libringlog.map \
	    -Wl,-z,defs -Wl,--as-needed $(LDFLAGS_ALL) -o $@ $(CLIENT_SO_OBJS) $(CLIENT_DEPS_LIBS)
$(LIB_CLIENT_SO): $(LIB_CLIENT_SO0)
	$(Q)ln -sf libringlog.so.0 $@

# The installed static library hides the internals as the shared one does: its objects are
# linked into one relocatable object whose symbols, except the rl_ API of libringlog.map's
# global section, are then made local (so a user's program can define io_*, batch_*, log_*...
# of its own, and sees only what ringlog.h declares).
LIB_CLIENT_PUB := $(BUILD)/lib/libringlog.a
CLIENT_API_GLOBS = $(shell sed -n '/global:/,/local:/{s/[[:space:];]//g;/^rl_/p;}' \
                     client/libringlog.map)
$(LIB_CLIENT_PUB): $(CLIENT_SO_OBJS) client/libringlog.map client/module.mk
	@mkdir -p $(dir $@)
	@echo "  AR      $@ (rl_ API only)"
	$(Q)ld -r -o $(BUILD)/lib/libringlog-all.o $(CLIENT_SO_OBJS)
	$(Q)objcopy --wildcard $(foreach g,$(CLIENT_API_GLOBS),--keep-global-symbol='$(g)') \
	    $(BUILD)/lib/libringlog-all.o $(BUILD)/lib/libringlog.o
	$(Q)rm -f $@ $(BUILD)/lib/libringlog-all.o && ar rcs $@ $(BUILD)/lib/libringlog.o
LIBS += $(LIB_CLIENT_A) $(LIB_CLIENT_PUB) $(LIB_CLIENT_SO)

# The tool links the static library, so it runs without LD_LIBRARY_PATH. The bench command
# (cli_bench*.c) measures the disk and loopback limits itself (cli_probe.c), so the tool links
# nothing of bench/.
CLI_SRCS := client/cli.c client/cli_topic.c client/cli_io.c client/cli_group.c client/cli_bench.c \
            client/cli_cluster.c \
            client/cli_bench_run.c client/cli_bench_hist.c client/cli_bench_payload.c \
            client/cli_bench_broker.c client/cli_bench_report.c client/cli_probe.c
CLI_OBJS := $(call obj,$(CLI_SRCS))
$(BUILD)/bin/ringlog: $(CLI_OBJS) $(LIB_CLIENT_A)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJS) $(LIB_CLIENT_A) $(DEPS_LIBS)
BINS += $(BUILD)/bin/ringlog

TESTS += $(BUILD)/tests/unit/test_client $(BUILD)/tests/integration/test_client_fake

# The bench command's histogram and payloads, tested on their own (they are CLI objects, not
# part of libringlog, so this program links them directly).
BENCH_UNIT_OBJS := $(call obj,client/cli_bench_hist.c client/cli_bench_payload.c \
                                  client/cli_bench_broker.c client/cli_probe.c)
$(BUILD)/tests/unit/test_cli_bench: $(BUILD)/obj/tests/unit/test_cli_bench.o $(BENCH_UNIT_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEPS_LIBS) $(CRITERION_LIBS)
TESTS += $(BUILD)/tests/unit/test_cli_bench

# The shared library as a user meets it (exports, dependencies, a program linked with it): a
# shell test, copied into place so the runner can execute it like the others.
$(BUILD)/tests/integration/test_client_so: tests/integration/test_client_so.sh $(LIB_CLIENT_SO) \
                                           $(LIB_CLIENT_PUB)
	@mkdir -p $(dir $@)
	$(Q)cp $< $@ && chmod +x $@
TESTS += $(BUILD)/tests/integration/test_client_so

# The public header as users compile it (C99, C++20, both -Wall -Werror) and its error list
# against common/err.h: a shell test like the one above.
$(BUILD)/tests/integration/test_client_header: tests/integration/test_client_header.sh \
                                               client/ringlog.h
	@mkdir -p $(dir $@)
	$(Q)cp $< $@ && chmod +x $@
TESTS += $(BUILD)/tests/integration/test_client_header

# examples/: two complete programs written as a user would (only ringlog.h, C99), linked with
# the installed form of the library; test_client_examples runs them against a live broker.
EXAMPLES := $(BUILD)/examples/producer $(BUILD)/examples/consumer
$(BUILD)/examples/%: examples/%.c client/ringlog.h $(LIB_CLIENT_PUB)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) -std=c99 -Wall -Wextra -Werror -pedantic $(SANFLAGS) -I client -o $@ $< \
	    $(LIB_CLIENT_PUB) $(CLIENT_DEPS_LIBS)
BINS += $(EXAMPLES)

# make docs: the reference page of ringlog.h (Doxygen), in $(BUILD)/docs/html/.
.PHONY: docs
docs: client/ringlog.h docs/Doxyfile
	@mkdir -p $(BUILD)/docs
	$(Q)(cat docs/Doxyfile; echo "OUTPUT_DIRECTORY = $(BUILD)/docs") | doxygen - >/dev/null
	@echo "  DOCS    $(BUILD)/docs/html/ringlog_8h.html"

# The suites that run real brokers, and the benchmark, need ringlogd in the build (broker/ is
# included before this fragment, so BINS already says whether it is).
# The answer-losing proxy of the idempotence and group tests.
TESTLIB_SRCS += tests/integration/tl_proxy.c tests/lib/tl_cli.c

ifneq ($(filter $(BUILD)/bin/ringlogd,$(BINS)),)
# The producer against a broker that comes and goes: non-blocking send, delivery status,
# callback re-entry, per-thread errors, the broker's codes as the public enum's.
TESTS += $(BUILD)/tests/integration/test_client_producer
TESTS += $(BUILD)/tests/integration/test_client_examples
TEST_DEPS += $(EXAMPLES)
TESTS += $(BUILD)/tests/integration/test_client_e2e $(BUILD)/tests/integration/test_cli \
         $(BUILD)/tests/integration/test_client_idem $(BUILD)/tests/integration/test_client_group \
         $(BUILD)/tests/integration/test_cli_group
# `ringlog bench` end to end: a 2 s open-loop run with --report, checked for what it promises.
TESTS += $(BUILD)/tests/integration/test_cli_bench
TEST_DEPS += $(BUILD)/bin/ringlog $(BUILD)/bin/ringlogd

# `make bench`: ringlog bench starts its own ringlogd, measures the disk, prints the summary
# (BENCH_ARGS=... passes options, e.g. --seconds 20 --dir /mnt/nvme).
.PHONY: bench-client
bench-client: $(BUILD)/bin/ringlog $(BUILD)/bin/ringlogd
	$(BUILD)/bin/ringlog bench --ringlogd $(BUILD)/bin/ringlogd $(BENCH_ARGS)
BENCH_TARGETS += bench-client

# `make bench-delivery`: libringlog's idempotence cost (on vs off in one run) and the time a
# group takes to hand a SIGKILLed member's partitions to another (bench/bench_delivery.c).
BENCH_DELIVERY := $(BUILD)/bench/bench_delivery
$(BENCH_DELIVERY): $(BUILD)/obj/bench/bench_delivery.o $(LIB_TESTLIB) $(LIB_CLIENT_A)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIB_TESTLIB) $(LIB_CLIENT_A) $(DEPS_LIBS)
.PHONY: bench-delivery
bench-delivery: $(BENCH_DELIVERY) $(BUILD)/bin/ringlogd
	RINGLOGD=$(BUILD)/bin/ringlogd $(BENCH_DELIVERY) $(BENCH_DELIVERY_ARGS)
BENCH_TARGETS += bench-delivery
endif

# make install PREFIX=/usr/local: the tool, both libraries, the header and a pkg-config file.
.PHONY: install-client
install-client: $(BUILD)/bin/ringlog $(LIB_CLIENT_PUB) $(LIB_CLIENT_SO)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/bin/ringlog $(DESTDIR)$(PREFIX)/bin/ringlog
	install -m 644 $(LIB_CLIENT_PUB) $(DESTDIR)$(PREFIX)/lib/libringlog.a
	install -m 755 $(LIB_CLIENT_SO0) $(DESTDIR)$(PREFIX)/lib/libringlog.so.0
	ln -sf libringlog.so.0 $(DESTDIR)$(PREFIX)/lib/libringlog.so
	install -m 644 client/ringlog.h $(DESTDIR)$(PREFIX)/include/ringlog.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' client/ringlog.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ringlog.pc
install: install-client
