# tests/fuzz/: libFuzzer harnesses, replayed over their seed corpus by `make test` and run under
# libFuzzer by `make fuzz`.
#
# How to add a harness NAME (nothing in this file needs to change):
#   1. Write tests/fuzz/fuzz_NAME.c defining
#          int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#      (#include "tests/fuzz/fuzz.h" for the prototypes and FUZZ_CHECK; read its rules). It may
#      call anything in the project's archives.
#   2. Commit a small seed corpus in tests/fuzz/corpus/NAME/ (< 50 files, < 200 KiB in all).
#   3. In YOUR module.mk add:   FUZZ_HARNESSES += NAME
#      Optionally:             FUZZ_FLAGS_NAME := -max_len=65536 ...   (extra libFuzzer flags)
# Then:
#   make test          builds $(BUILD)/tests/fuzz/replay_NAME (harness + replay_main.c, normal
#                      compiler, all project archives) and runs every corpus file through it
#   make fuzz-NAME     builds $(BUILD)/fuzz/fuzz_NAME with clang -fsanitize=fuzzer,address,
#                      undefined and fuzzes for FUZZ_SECONDS (default 600); new inputs go to
#                      $(BUILD)/fuzz/corpus/NAME/ (never into git), crashes to
#                      $(BUILD)/fuzz/artifacts/NAME/, the log to $(BUILD)/fuzz/NAME.log
#   make fuzz          every harness in turn;  make fuzz-build  build them only
# To keep a finding as a regression input, copy the (minimized) artifact into
# tests/fuzz/corpus/NAME/ once it is fixed.
#
# Module fragments are included before this one, so FUZZ_HARNESSES is complete here and the
# per-harness rules below are generated with $(foreach ... $(eval ...)).

FUZZ_HARNESSES += batch
# Room for scripted records with values of a few KiB and for batches of many records.
FUZZ_FLAGS_batch := -max_len=16384

FUZZ_SECONDS ?= 600
FUZZ_CC ?= clang
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_FLAGS ?= -timeout=20 -rss_limit_mb=2048
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Same language and warnings as the main build but not -Werror: clang warns about things gcc
# does not, and a new clang warning must not stop anyone from fuzzing.
FUZZ_CFLAGS = -std=c17 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -gline-tables-only \
              $(FUZZ_SAN) -Wall -Wextra -Wno-unused-parameter -MMD -MP \
              -I. -I$(BUILD)/gen $(DEPS_CFLAGS)
# The project code under test, compiled again by clang with coverage instrumentation into one
# archive; the linker takes only the members a harness needs.
FUZZ_LIB = $(FUZZ_DIR)/lib/librl_fuzz.a
FUZZ_LIB_SRCS = $(COMMON_SRCS) $(IO_SRCS) $(STORAGE_SRCS) $(REPL_SRCS) $(PROTO_SRCS) $(BROKER_SRCS) \
                $(CLIENT_SRCS)
FUZZ_LIB_OBJS = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_LIB_SRCS))

$(FUZZ_DIR)/obj/%.o: %.c | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Per harness NAME: the replay program (make test), the libFuzzer binary and its run target.
define FUZZ_HARNESS_RULES
TESTS += $(BUILD)/tests/fuzz/replay_$(1)
FUZZ_TARGETS += $(FUZZ_DIR)/fuzz_$(1)

$(BUILD)/obj/tests/fuzz/replay_main_$(1).o: tests/fuzz/replay_main.c
	@mkdir -p $$(dir $$@)
	@echo "  CC      $$< ($(1))"
	$(Q)$(CC) $(CFLAGS_ALL) -DFUZZ_CORPUS_DIR='"$(CURDIR)/tests/fuzz/corpus/$(1)"' -c $$< -o $$@

$(BUILD)/tests/fuzz/replay_$(1): $(BUILD)/obj/tests/fuzz/fuzz_$(1).o \
        $(BUILD)/obj/tests/fuzz/replay_main_$(1).o $(TEST_LINK_LIBS)
	@mkdir -p $$(dir $$@)
	@echo "  LINK    $$@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $$@ $(BUILD)/obj/tests/fuzz/fuzz_$(1).o \
	    $(BUILD)/obj/tests/fuzz/replay_main_$(1).o $(TEST_LINK_LIBS) $(DEPS_LIBS)

$(FUZZ_DIR)/fuzz_$(1): $(FUZZ_DIR)/obj/tests/fuzz/fuzz_$(1).o $(FUZZ_LIB)
	@echo "  LINK    $$@"
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $(DEPS_LIBS)

.PHONY: fuzz-$(1)
fuzz-$(1): $(FUZZ_DIR)/fuzz_$(1)
	@mkdir -p $(FUZZ_DIR)/corpus/$(1) $(FUZZ_DIR)/artifacts/$(1)
	@echo "  FUZZ    $(1) for $(FUZZ_SECONDS)s (log $(FUZZ_DIR)/$(1).log)"
	$(Q)$(FUZZ_DIR)/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/artifacts/$(1)/ $(FUZZ_FLAGS) $(FUZZ_FLAGS_$(1)) \
	    $(FUZZ_DIR)/corpus/$(1) tests/fuzz/corpus/$(1) > $(FUZZ_DIR)/$(1).log 2>&1; \
	rc=$$$$?; grep -E '^(stat::|Done [0-9]+ runs)' $(FUZZ_DIR)/$(1).log | sed 's/^/    $(1): /'; \
	if [ $$$$rc -ne 0 ]; then tail -n 60 $(FUZZ_DIR)/$(1).log; \
	    echo "fuzz-$(1): FAILED (exit $$$$rc); inputs in $(FUZZ_DIR)/artifacts/$(1)/"; fi; \
	exit $$$$rc
endef
$(foreach h,$(sort $(FUZZ_HARNESSES)),$(eval $(call FUZZ_HARNESS_RULES,$(h))))

.PHONY: fuzz-build
fuzz-build: $(foreach h,$(sort $(FUZZ_HARNESSES)),$(FUZZ_DIR)/fuzz_$(h))
fuzz: $(foreach h,$(sort $(FUZZ_HARNESSES)),fuzz-$(h))

# Regenerates the committed seed corpus of the batch harness (deterministic output).
.PHONY: fuzz-corpus-batch
fuzz-corpus-batch: $(BUILD)/tests/fuzz/gen_corpus_batch
	$(BUILD)/tests/fuzz/gen_corpus_batch tests/fuzz/corpus/batch

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
