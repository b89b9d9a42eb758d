# tests/fuzz/fuzz.mk — libFuzzer harnesses for sshbox's parsers.
#
# Include it from GNUmakefile (`include tests/fuzz/fuzz.mk`), or use it on
# its own from the repository root: `make -f tests/fuzz/fuzz.mk fuzz`.
#
#   make fuzz-build   build/fuzz/fuzz_{jobspec,stream,fernet,config}
#   make fuzz         build, then run each harness FUZZ_SECONDS (default
#                     60) and print per harness: runs, exec/s, coverage,
#                     crashes; fails if any harness found one
#   make fuzz-run-NAME  one harness only (`make -j2 fuzz` runs two at once)
#   tests/fuzz/regress.sh   replay tests/fuzz/regressions and the seeds
#
# Needs clang with its sanitizer and libFuzzer runtime (Debian 12: clang,
# libclang-rt-14-dev).  The library modules (src/*.c but main.c and cmd*.c)
# are compiled again with clang into build/fuzz/obj, instrumented for
# coverage (-fsanitize=fuzzer-no-link) and ASan + UBSan; every harness links
# them with -fsanitize=fuzzer.  Outputs, all under FUZZ_WORK (build/fuzz):
# corpus/NAME/ (a writable copy of tests/fuzz/corpus/NAME/ that grows
# between runs), crashes/NAME/, logs/NAME.log and logs/NAME.summary.
# Every variable is FUZZ_-prefixed and may be set on the command line.

FUZZ_saved_default_goal := $(.DEFAULT_GOAL)
# on its own (make -f tests/fuzz/fuzz.mk), the default goal is fuzz-build
FUZZ_standalone := $(if $(filter-out $(lastword $(MAKEFILE_LIST)),$(MAKEFILE_LIST)),,1)

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RSS_MB ?= 2048
FUZZ_TIMEOUT ?= 10
FUZZ_ARGS ?=
FUZZ_DIR ?= build/fuzz
FUZZ_WORK ?= $(FUZZ_DIR)
FUZZ_NAMES := jobspec stream fernet config
# -max_len per harness: a job spec or config file well past their limits'
# interesting region (config files stop at 64 KiB: a little more reaches
# that check); the stream harness needs room for lines that outgrow the
# framer's buffer and for chunk patterns
FUZZ_MAX_LEN_jobspec := 65536
FUZZ_MAX_LEN_stream := 262144
FUZZ_MAX_LEN_fernet := 65536
FUZZ_MAX_LEN_config := 66000
# Extra read-only corpora, skipped when absent (no shared/ beside the repo)
FUZZ_SHARED ?= ../shared
FUZZ_JSON_SUITE := $(FUZZ_SHARED)/refs/JSONTestSuite/test_parsing
FUZZ_EXTRA_jobspec := $(FUZZ_JSON_SUITE)
FUZZ_EXTRA_stream := $(FUZZ_JSON_SUITE)

# GNUmakefile's warning set without the gcc-only -Wno-format-truncation
# (clang rejects unknown warning options under -Werror)
FUZZ_WARN := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	-Wold-style-definition -Wwrite-strings -Wvla -Wpointer-arith \
	-Wformat-security -fno-common -Wshadow -Wformat=2
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -DJSMN_STRICT -DJSMN_PARENT_LINKS $(FUZZ_WARN) \
	-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
	-MMD -MP
# the scripts of src/sh/ as headers in build/gen (GNUmakefile's rule)
include scripts/embed-sh.mk
FUZZ_CPPFLAGS := -Isrc -I$(SH_GEN_DIR)
FUZZ_LDLIBS := -lhiredis -lssl -lcrypto

FUZZ_SRC := $(filter-out src/main.c src/cmd%.c,$(sort $(wildcard src/*.c)))
FUZZ_OBJ := $(FUZZ_SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BIN := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)

ifeq ($(V),1)
FUZZ_Q :=
else
FUZZ_Q := @
endif

.PHONY: fuzz fuzz-build $(FUZZ_NAMES:%=fuzz-run-%)
# made by a pattern rule for pattern-rule targets: keep them, or make
# deletes them as intermediate files
.SECONDARY: $(FUZZ_OBJ)

fuzz-build: $(FUZZ_BIN)

$(FUZZ_OBJ): | $(SH_GEN)

$(FUZZ_DIR)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "  CC-FUZZ $<"
	$(FUZZ_Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_CPPFLAGS) -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	@mkdir -p $(@D)
	@echo "  LD-FUZZ $@"
	$(FUZZ_Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_CPPFLAGS) -Itests/fuzz -o $@ $< \
		$(FUZZ_OBJ) $(FUZZ_LDLIBS)

define FUZZ_RUN_RULE
fuzz-run-$(1): $(FUZZ_DIR)/fuzz_$(1)
	$$(FUZZ_Q)FUZZ_SECONDS='$$(FUZZ_SECONDS)' FUZZ_RSS_MB='$$(FUZZ_RSS_MB)' \
		FUZZ_TIMEOUT='$$(FUZZ_TIMEOUT)' FUZZ_ARGS='$$(FUZZ_ARGS)' \
		FUZZ_BIN_DIR='$$(FUZZ_DIR)' FUZZ_WORK='$$(FUZZ_WORK)' \
		tests/fuzz/run.sh $(1) $$(FUZZ_MAX_LEN_$(1)) $$(FUZZ_EXTRA_$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_RUN_RULE,$(n))))

fuzz: $(FUZZ_NAMES:%=fuzz-run-%)
	@echo "fuzz: $(FUZZ_SECONDS) s per harness; corpora, crashes and logs under $(FUZZ_WORK)/"
	$(FUZZ_Q)FUZZ_WORK='$(FUZZ_WORK)' tests/fuzz/run.sh --summary $(FUZZ_NAMES)

-include $(FUZZ_OBJ:.o=.d) $(FUZZ_BIN:=.d)

# Including this file must not change the including makefile's default goal.
.DEFAULT_GOAL := $(if $(FUZZ_standalone),fuzz-build,$(FUZZ_saved_default_goal))
