# scripts/embed-sh.mk — the scripts of src/sh/ as C headers build/gen/sh_NAME.h
# (scripts/embed-sh.sh), for GNUmakefile and tests/fuzz/fuzz.mk, which
# include it (once: it guards itself).  A module includes "sh_NAME.h" with
# -I$(SH_GEN_DIR); its objects list $(SH_GEN) as order-only prerequisites,
# so the headers exist before the first compile, and gcc's -MMD records
# the real dependency for every later build (an edited .sh rebuilds what
# embeds it).
ifndef SH_GEN
SH_GEN_DIR := build/gen
SH_SRC := $(sort $(wildcard src/sh/*.sh))
SH_GEN := $(SH_SRC:src/sh/%.sh=$(SH_GEN_DIR)/sh_%.h)

ifeq ($(V),1)
SH_Q :=
else
SH_Q := @
endif

$(SH_GEN): $(SH_GEN_DIR)/sh_%.h: src/sh/%.sh scripts/embed-sh.sh
	@mkdir -p $(@D)
	@echo "  EMBED   $<"
	$(SH_Q)scripts/embed-sh.sh $< $@
endif
