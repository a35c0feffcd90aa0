# broker/kafka/: the Kafka-protocol listener: its pure parts (wire codec, API table, error map,
# RecordBatch v2 translation) and the handlers over the protocol-neutral services (kserve*).
BROKER_SRCS += broker/kafka/kwire.c broker/kafka/crc32c.c broker/kafka/kerr.c \
               broker/kafka/kframe.c broker/kafka/kapi.c broker/kafka/kio.c broker/kafka/kmsg.c \
               broker/kafka/kmsg_data.c broker/kafka/kmsg_meta.c broker/kafka/kmsg_group.c \
               broker/kafka/kcodec.c broker/kafka/kbatch.c broker/kafka/kserve.c \
               broker/kafka/kserve_data.c broker/kafka/kserve_group.c broker/kafka/kserve_admin.c \
               broker/kafka/kserve_auto.c

TESTS += $(BUILD)/tests/unit/test_kafka_wire $(BUILD)/tests/unit/test_kafka_msg \
         $(BUILD)/tests/unit/test_kafka_batch $(BUILD)/tests/unit/test_group_client

# `make bench-kafka-codec`: the cost of batch translation per codec (bench/bench_kafka_codec.c).
BENCH_TARGETS += bench-kafka-codec
.PHONY: bench-kafka-codec
$(BUILD)/bench/bench_kafka_codec: $(BUILD)/obj/bench/bench_kafka_codec.o $(LIB_BROKER) \
                                  $(LIB_COMMON)
	@mkdir -p $(dir $@)
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB_BROKER) $(LIB_COMMON) $(DEPS_LIBS)
bench-kafka-codec: $(BUILD)/bench/bench_kafka_codec
	$(BUILD)/bench/bench_kafka_codec

# `make bench-kafka`: librdkafka's producer and consumer against the Kafka listener beside
# `ringlog bench` on the native protocol, in one run (bench/bench_kafka.sh prints
# "kafka: produce P MB/s = R of native, consume C MB/s = S of native").
BENCH_TARGETS += bench-kafka
.PHONY: bench-kafka
$(BUILD)/bench/bench_kafka_rd: bench/bench_kafka_rd.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(LDFLAGS_ALL) $(RDKAFKA_LIBS)
bench-kafka: $(BUILD)/bench/bench_kafka_rd $(BUILD)/bin/ringlog $(BUILD)/bin/ringlogd
	$(Q)BUILD=$(BUILD) sh bench/bench_kafka.sh

# Fuzz harnesses (tests/fuzz/module.mk builds, replays and fuzzes them): request frames, and
# batch translation. `make fuzz-corpus-kafka` regenerates both seed corpora.
FUZZ_HARNESSES += kafka kafka_batch
FUZZ_FLAGS_kafka := -max_len=65536
FUZZ_FLAGS_kafka_batch := -max_len=65536
.PHONY: fuzz-corpus-kafka
fuzz-corpus-kafka: $(BUILD)/tests/fuzz/gen_corpus_kafka
	mkdir -p tests/fuzz/corpus/kafka tests/fuzz/corpus/kafka_batch
	$(BUILD)/tests/fuzz/gen_corpus_kafka tests/fuzz/corpus/kafka tests/fuzz/corpus/kafka_batch

# Kafka client test programs (tests/kafka/run.sh runs them against ringlogd --kafka-listen;
# tests/module.mk puts them in make test). `make kafka-client-tests` builds them and installs
# kafkajs from npm into $(BUILD)/kafka-npm (never committed); an npm that cannot install it
# (offline) leaves the kafkajs test to be skipped, with the reason, instead of failing the
# build.
KAFKA_CLIENT_TESTS := $(BUILD)/tests/kafka/rdkafka_idem_group $(BUILD)/tests/kafka/sarama_group \
                      $(BUILD)/kafka-npm/node_modules/kafkajs/package.json
$(BUILD)/tests/kafka/rdkafka_idem_group: tests/kafka/rdkafka_idem_group.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(LDFLAGS_ALL) $(RDKAFKA_LIBS)
# Debian's Go packages live in /usr/share/gocode: GOPATH mode builds offline.
$(BUILD)/tests/kafka/sarama_group: tests/kafka/sarama_group/main.go
	@mkdir -p $(dir $@)
	@echo "  GO      $<"
	$(Q)GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(CURDIR)/$(BUILD)/gocache \
	    go build -o $@ ./tests/kafka/sarama_group
$(BUILD)/kafka-npm/node_modules/kafkajs/package.json:
	@mkdir -p $(BUILD)/kafka-npm
	$(Q)npm install --no-audit --no-fund --silent --prefix $(BUILD)/kafka-npm kafkajs@2.2.4 || \
	    echo "npm could not install kafkajs 2.2.4 (offline?): the kafkajs test will be skipped"
.PHONY: kafka-client-tests test-kafka-clients
kafka-client-tests: $(KAFKA_CLIENT_TESTS)
test-kafka-clients: $(KAFKA_CLIENT_TESTS) $(BINS)
	$(Q)BUILD=$(BUILD) sh tests/kafka/run.sh
