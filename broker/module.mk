# broker/: ringlogd. One fragment for the broker's subfolders, whose dependencies point one way
# (docs/architecture.md, "Broker"):
#   server -> native, http -> delivery -> meta -> partition -> svc
BROKER_SRCS += broker/svc/bg.c \
               broker/partition/partition.c broker/partition/partition_open.c \
               broker/meta/config_topic.c broker/meta/metalog.c broker/meta/meta_record.c \
               broker/meta/meta.c broker/meta/meta_propose.c \
               broker/delivery/pstate.c broker/delivery/group.c broker/delivery/offsets.c \
               broker/delivery/idempotence.c broker/delivery/idem_state.c \
               broker/delivery/coordinator.c \
               broker/delivery/produce.c broker/delivery/fetch.c broker/delivery/delivery.c \
               broker/native/native.c broker/native/native_topics.c broker/native/native_replicas.c \
               broker/native/native_data.c \
               broker/native/native_groups.c \
               broker/cluster/peer.c broker/cluster/ctl.c broker/cluster/replica.c \
               broker/cluster/ctlckpt.c \
               broker/server/config.c broker/server/loopclock.c broker/server/req.c \
               broker/server/conn.c broker/server/services.c broker/server/shard.c \
               broker/server/http.c broker/server/dirlock.c

# Shared test helpers (tests/lib): broker processes and a blocking protocol client.
TESTLIB_SRCS += tests/lib/tl_broker.c tests/lib/tl_client.c tests/lib/tl_cluster.c

TESTS += $(BUILD)/tests/unit/test_frame $(BUILD)/tests/unit/test_config \
         $(BUILD)/tests/unit/test_partition $(BUILD)/tests/unit/test_bg \
         $(BUILD)/tests/unit/test_meta \
         $(BUILD)/tests/unit/test_broker_metalog $(BUILD)/tests/unit/test_pstate \
         $(BUILD)/tests/unit/test_group $(BUILD)/tests/unit/test_offsets
# The controller's apply checkpoint file: round trip and damage.
TESTS += $(BUILD)/tests/unit/test_ctlckpt

# Producer state across seeded power cuts on the simulated back-end (1,000 seeds in make test;
# more with make test-idem-powercut IDEM_POWERCUT_SEEDS=N).
TESTS += $(BUILD)/tests/unit/test_idem_powercut
# Committed offsets across damage, snapshots and power cuts, on the simulated back-end.
TESTS += $(BUILD)/tests/unit/test_offsets_state
# The produce path of a replicated partition under a scripted replicator (acknowledgement rule).
TESTS += $(BUILD)/tests/unit/test_repl_produce
# Which broker answers for a group, by the role of its __consumer_offsets replica (scripted).
TESTS += $(BUILD)/tests/unit/test_coord_cluster
IDEM_POWERCUT_SEEDS ?= 20000
.PHONY: test-idem-powercut
test-idem-powercut: $(BUILD)/tests/unit/test_idem_powercut
	RINGLOG_IDEM_POWERCUT_SEEDS=$(IDEM_POWERCUT_SEEDS) $(BUILD)/tests/unit/test_idem_powercut

# libFuzzer harness for frame and request decoding (tests/fuzz/module.mk builds and replays it).
FUZZ_HARNESSES += frame
FUZZ_FLAGS_frame := -max_len=65536

BINS += $(BUILD)/bin/ringlogd
$(BUILD)/bin/ringlogd: $(BUILD)/obj/broker/server/ringlogd.o $(LIB_BROKER) $(LIB_REPL) \
                       $(LIB_STORAGE) $(LIB_IO) $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB_BROKER) $(LIB_REPL) $(LIB_STORAGE) $(LIB_IO) \
	    $(LIB_PROTO) $(LIB_COMMON) \
	    $(DEPS_LIBS)

# Integration suites: real ringlogd processes (tests/lib client).
TESTS += $(BUILD)/tests/integration/test_broker $(BUILD)/tests/integration/test_broker_badinput \
         $(BUILD)/tests/integration/test_broker_restart $(BUILD)/tests/integration/test_broker_chaos \
         $(BUILD)/tests/integration/test_broker_datadir \
         $(BUILD)/tests/integration/test_broker_create_load \
         $(BUILD)/tests/integration/test_idempotence $(BUILD)/tests/integration/test_groups \
         $(BUILD)/tests/integration/test_cluster
# Operating a cluster: status, refusals that say what to do, rollback, start-up replay bound.
TESTS += $(BUILD)/tests/integration/test_cluster_admin
# Guards against operators' and clients' mistakes, and limits against hostile peers (issue 9).
TESTS += $(BUILD)/tests/integration/test_broker_guard $(BUILD)/tests/integration/test_broker_limits \
         $(BUILD)/tests/integration/test_broker_diskfull $(BUILD)/tests/integration/test_broker_malformed
# Replicated partitions: failover under idempotent acks=all load, replicas byte for byte equal.
TESTS += $(BUILD)/tests/integration/test_replication
# Operations: SIGTERM hands leadership off (rolling restart under load), preferred leaders.
TESTS += $(BUILD)/tests/integration/test_replication_ops
# Moving replicas: remove-broker under acks=all load, a leader killed mid-move, bad requests.
TESTS += $(BUILD)/tests/integration/test_reassign
# Decommissioned brokers stay out of placement (restart, snapshot install); cancelling a move.
TESTS += $(BUILD)/tests/integration/test_decom
# Groups keep their committed offsets when their coordinator's broker is killed.
TESTS += $(BUILD)/tests/integration/test_repl_groups
# A follower behind the leader's log start catches up by snapshot install; replication metrics.
TESTS += $(BUILD)/tests/integration/test_repl_catchup
# The controller log truncated at its apply checkpoint; nodes behind it catch up by install.
TESTS += $(BUILD)/tests/integration/test_ctl_snapshot
# Fast failover: a SIGKILLed leader's partition takes acks=all produce again within a bound.
TESTS += $(BUILD)/tests/integration/test_repl_failover
# The tail cache end to end: tail fetches counted as hits, bytes identical to the disk's.
TESTS += $(BUILD)/tests/integration/test_tail_cache
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

# `make bench-idempotence`: produce throughput with idempotence off and on in one run.
BENCH_IDEM := $(BUILD)/bench/bench_idempotence
$(BENCH_IDEM): $(BUILD)/obj/bench/bench_idempotence.o $(LIB_TESTLIB) $(LIB_BROKER) $(LIB_IO) \
               $(LIB_PROTO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIB_TESTLIB) $(LIB_BROKER) $(LIB_IO) \
	    $(LIB_PROTO) $(LIB_COMMON) $(DEPS_LIBS)
.PHONY: bench-idempotence
bench-idempotence: $(BENCH_IDEM) $(BUILD)/bin/ringlogd
	RINGLOGD=$(BUILD)/bin/ringlogd $(BENCH_IDEM) $(BENCH_IDEM_ARGS)
BENCH_TARGETS += bench-idempotence
