# broker/kafka/: the Kafka-protocol listener's pure parts (wire codec, API table, error map,
# RecordBatch v2 translation). They go into the broker archive; the listener itself joins once
# the broker's services are protocol-neutral.
BROKER_SRCS += broker/kafka/kwire.c broker/kafka/crc32c.c broker/kafka/kerr.c \
               broker/kafka/kframe.c broker/kafka/kapi.c broker/kafka/kio.c broker/kafka/kmsg.c \
               broker/kafka/kmsg_data.c broker/kafka/kmsg_meta.c broker/kafka/kmsg_group.c \
               broker/kafka/kcodec.c broker/kafka/kbatch.c

TESTS += $(BUILD)/tests/unit/test_kafka_wire $(BUILD)/tests/unit/test_kafka_msg \
         $(BUILD)/tests/unit/test_kafka_batch
