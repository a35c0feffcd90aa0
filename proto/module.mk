# proto/: the native protocol's protobuf schema, compiled by protoc-c at build time (the
# generated C is never committed).
$(BUILD)/gen/proto/ringlog.pb-c.c $(BUILD)/gen/proto/ringlog.pb-c.h &: proto/ringlog.proto $(DEPS_MK)
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(BUILD)/gen proto/ringlog.proto
GEN_HDRS += $(BUILD)/gen/proto/ringlog.pb-c.h
PROTO_SRCS += $(BUILD)/gen/proto/ringlog.pb-c.c

# The native frame codec (framing, envelope decode/encode): broker, client and tests share it.
PROTO_SRCS += proto/frame.c
