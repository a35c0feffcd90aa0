# bench/: the benchmark reports built on `ringlog bench` (client/cli_bench*.c). Neither target
# is part of `make bench` or `make test`; each installs the one tool it needs (bench/tools.sh).
BENCH_REPORT_DIR ?= $(BUILD)/bench-report
BENCH_PROFILE_DIR ?= $(BUILD)/bench-profile

# `make bench-report`: the standard sweep (10% to 100% of the maximum, 10 s each), tail and
# catch-up, and zstd against none on random and json records, drawn into
# $(BENCH_REPORT_DIR)/index.html (BENCH_ARGS=... adds options, e.g. --seconds 1800 --rate 200
# for the long run).
.PHONY: bench-report
bench-report: $(BUILD)/bin/ringlog $(BUILD)/bin/ringlogd
	$(Q)sh bench/tools.sh gnuplot
	$(Q)rm -rf $(BENCH_REPORT_DIR)
	$(BUILD)/bin/ringlog bench --ringlogd $(BUILD)/bin/ringlogd --sweep --codecs \
	    --report $(BENCH_REPORT_DIR) $(BENCH_ARGS)

# `make bench-profile`: the standard bench with perf recording the broker and the client
# during the max, half-load, tail-read and catch-up phases; prints the top entries of each.
.PHONY: bench-profile
bench-profile: $(BUILD)/bin/ringlog $(BUILD)/bin/ringlogd
	$(Q)sh bench/tools.sh perf
	$(Q)rm -rf $(BENCH_PROFILE_DIR)
	$(BUILD)/bin/ringlog bench --ringlogd $(BUILD)/bin/ringlogd --perf $(BENCH_PROFILE_DIR) \
	    $(BENCH_ARGS)
	$(Q)for f in $(BENCH_PROFILE_DIR)/*.perf.data; do \
	    echo "== $$(basename $$f .perf.data): samples by process:" \
	        $$(perf report -i $$f --sort comm --stdio -g none 2>/dev/null | \
	           grep -v '^#' | grep -v '^$$' | tr -s ' ' | tr '\n' ';'); \
	    for comm in ringlogd ringlog; do \
	        out=$${f%.perf.data}.$$comm.txt; \
	        perf report -i $$f --comms $$comm --percentage relative --no-children \
	            --sort dso,sym --stdio -g none --percent-limit 0.5 2>/dev/null | \
	            grep -v '^#' | grep -v '^$$' > $$out; \
	        echo "-- $$comm (share of its own samples; all in $$out)"; \
	        head -n 12 $$out; \
	    done; \
	done

# `make bench-replication`: three brokers on 127.0.0.1 as one cluster, 3 replicas, acks=all,
# idempotent 1 KiB records: throughput as a fraction of the raw disk measured in the same run,
# p99 at half load, failover over 50 leader kills (bench/bench_replication.c).
# `make bench-replication-idle`: 1,000 partitions x 3 replicas idle: CPU per broker, memory per
# partition replica. BENCH_REPL_ARGS=... passes options (--replicas 1 for development).
BENCH_REPL := $(BUILD)/bench/bench_replication
BENCH_REPL_OBJS := $(call obj,client/cli_bench_run.c client/cli_bench_hist.c \
                     client/cli_bench_payload.c client/cli_bench_broker.c client/cli_probe.c)
$(BENCH_REPL): $(BUILD)/obj/bench/bench_replication.o $(BENCH_REPL_OBJS) $(LIB_TESTLIB) \
               $(LIB_CLIENT_A)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIB_TESTLIB) $(LIB_CLIENT_A) $(DEPS_LIBS) -lm
.PHONY: bench-replication bench-replication-idle
bench-replication: $(BENCH_REPL) $(BUILD)/bin/ringlogd
	RINGLOGD=$(BUILD)/bin/ringlogd $(BENCH_REPL) $(BENCH_REPL_ARGS)
bench-replication-idle: $(BENCH_REPL) $(BUILD)/bin/ringlogd
	RINGLOGD=$(BUILD)/bin/ringlogd $(BENCH_REPL) --idle $(BENCH_REPL_ARGS)
