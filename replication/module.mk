# replication/: the raft core (pure state machine), its simulator and benchmark, and the glue
# from the core to the partition log.
REPL_SRCS += replication/raft.c replication/memlog.c replication/raftlog.c replication/hstore.c \
             replication/rwire.c replication/repl.c

# Unit tests of the core's behaviours (Criterion) and the deterministic simulator.
TESTS += $(BUILD)/tests/unit/test_raft $(BUILD)/tests/sim/test_sim

# The simulator library (cluster, network, disk, checker), shared by test_sim and bench-raft.
SIM_OBJS := $(BUILD)/obj/tests/sim/sim.o $(BUILD)/obj/tests/sim/sim_glue.o
# The raft programs link only the layers they use (replication, and for the glue mode storage
# and io), so a broken build elsewhere in the tree does not stop them.
TESTS += $(BUILD)/tests/sim/test_sim_glue $(BUILD)/tests/sim/test_sim_notice
$(BUILD)/tests/sim/test_sim $(BUILD)/tests/sim/test_sim_glue $(BUILD)/tests/sim/test_sim_notice: \
		$(BUILD)/tests/sim/%: \
		$(BUILD)/obj/tests/sim/%.o $(SIM_OBJS) $(LIB_REPL) $(LIB_STORAGE) $(LIB_IO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEPS_LIBS)
$(BUILD)/tests/unit/test_raft: $(BUILD)/obj/tests/unit/test_raft.o $(LIB_REPL) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEPS_LIBS) $(CRITERION_LIBS)

# The glue on real files and io_uring: replication before storage in the link (layer order).
REPL_GLUE_TESTS := $(foreach t,raftlog hstore repl,$(BUILD)/tests/unit/test_$(t) \
                     $(BUILD)/tests/unit/test_$(t)_sim)
TESTS += $(REPL_GLUE_TESTS)
$(REPL_GLUE_TESTS): $(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(LIB_REPL) \
		$(LIB_STORAGE) $(LIB_IO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEPS_LIBS) $(CRITERION_LIBS)

# Planted bugs: the core and the simulator's driver rebuilt with -DRAFT_PLANT_BUG=N into
# separate objects and programs. The production raft.o (and librl_replication.a) never holds
# them. Each program passes only if the simulator catches its bug within a fixed seed budget.
# 9 is a bug of the lost-connection notice: its program runs with --notice on.
RAFT_PLANTED := 1 2 3 4 5 6 9
RAFT_BUG_BINS := $(foreach n,$(RAFT_PLANTED),$(BUILD)/tests/sim/planted_bug$(n))
RAFT_BUG_OBJS := $(foreach n,$(RAFT_PLANTED),$(BUILD)/obj/replication/raft_bug$(n).o)
SIM_BUG_OBJS := $(foreach n,$(RAFT_PLANTED),$(BUILD)/obj/tests/sim/test_sim_bug$(n).o)
TESTS += $(RAFT_BUG_BINS)
# Static pattern rules: they apply to exactly these targets (a plain pattern rule would also
# offer make a way to "remake" the included .d files through its built-in link rule).
$(RAFT_BUG_OBJS): $(BUILD)/obj/replication/raft_bug%.o: replication/raft.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (planted bug $*)"
	$(Q)$(CC) $(CFLAGS_ALL) -DRAFT_PLANT_BUG=$* -c $< -o $@
$(SIM_BUG_OBJS): $(BUILD)/obj/tests/sim/test_sim_bug%.o: tests/sim/test_sim.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (planted bug $*)"
	$(Q)$(CC) $(CFLAGS_ALL) -DRAFT_PLANT_BUG=$* -c $< -o $@
$(RAFT_BUG_BINS): $(BUILD)/tests/sim/planted_bug%: $(BUILD)/obj/tests/sim/test_sim_bug%.o \
		$(BUILD)/obj/replication/raft_bug%.o $(SIM_OBJS) $(BUILD)/obj/replication/memlog.o \
		$(LIB_REPL) $(LIB_STORAGE) $(LIB_IO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEPS_LIBS)

# Planted bugs of the glue, caught by the simulator's glue mode on simulated disks: 7, the
# raftlog reports an append durable when it hands it to the plog; 8, the hstore counts a put
# durable before its fsync.
GLUE_PLANTED_BINS := $(BUILD)/tests/sim/planted_bug7 $(BUILD)/tests/sim/planted_bug8
TESTS += $(GLUE_PLANTED_BINS)
$(BUILD)/obj/replication/raftlog_bug7.o: replication/raftlog.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (planted bug 7)"
	$(Q)$(CC) $(CFLAGS_ALL) -DRAFT_PLANT_BUG=7 -c $< -o $@
$(BUILD)/obj/replication/hstore_bug8.o: replication/hstore.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (planted bug 8)"
	$(Q)$(CC) $(CFLAGS_ALL) -DRAFT_PLANT_BUG=8 -c $< -o $@
$(BUILD)/obj/tests/sim/test_sim_gbug7.o $(BUILD)/obj/tests/sim/test_sim_gbug8.o: \
		$(BUILD)/obj/tests/sim/test_sim_gbug%.o: tests/sim/test_sim.c
	@mkdir -p $(dir $@)
	@echo "  CC      $< (planted glue bug $*)"
	$(Q)$(CC) $(CFLAGS_ALL) -DRAFT_PLANT_BUG=$* -DSIM_GLUE_DEFAULT=1 -c $< -o $@
GLUE_BUG_OBJS_7 := $(BUILD)/obj/tests/sim/test_sim_gbug7.o $(BUILD)/obj/replication/raftlog_bug7.o
GLUE_BUG_OBJS_8 := $(BUILD)/obj/tests/sim/test_sim_gbug8.o $(BUILD)/obj/replication/hstore_bug8.o
# The broken objects go before the archives, so the archives' sound copies are never pulled in.
$(GLUE_PLANTED_BINS): $(BUILD)/tests/sim/planted_bug%: $(GLUE_BUG_OBJS_7) $(GLUE_BUG_OBJS_8) \
		$(SIM_OBJS) $(LIB_REPL) $(LIB_STORAGE) $(LIB_IO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(GLUE_BUG_OBJS_$*) $(SIM_OBJS) $(LIB_REPL) $(LIB_STORAGE) \
		$(LIB_IO) $(LIB_COMMON) $(DEPS_LIBS)

# make sim SEEDS=N: the simulator over N seeds per configuration (default 10000).
SEEDS ?= 10000
sim: $(BUILD)/tests/sim/test_sim
	$(BUILD)/tests/sim/test_sim --seeds $(SEEDS)

# make bench-raft: commit throughput of an in-process 3-node group, election recovery, and the
# idle cost of 1,000 groups per broker through the replication driver.
BENCH_TARGETS += bench-raft
$(BUILD)/bench/raft_bench: $(BUILD)/obj/bench/raft_bench.o $(SIM_OBJS) $(LIB_REPL) \
		$(LIB_STORAGE) $(LIB_IO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEPS_LIBS)
.PHONY: bench-raft
bench-raft: $(BUILD)/bench/raft_bench
	$(BUILD)/bench/raft_bench

# make bench-replica: memory per partition replica (plog + raftlog + raft + repl group) and the
# idle CPU of 1,000 partition groups of 3 replicas on 3 in-process brokers (bench/replica_cost.c).
BENCH_TARGETS += bench-replica
$(BUILD)/bench/replica_cost: $(BUILD)/obj/bench/replica_cost.o $(LIB_REPL) $(LIB_STORAGE) \
		$(LIB_IO) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEPS_LIBS)
.PHONY: bench-replica
bench-replica: $(BUILD)/bench/replica_cost
	$(BUILD)/bench/replica_cost
