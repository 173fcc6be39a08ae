# examples/common: what the example apps share (example.h): flags, TLS
# options, health and reflection, signals.  Included by every app's .mk
# (which needs EX_COMMON_* before examples.mk's wildcard may reach this
# file) and by examples/examples.mk; the guard keeps it to once.
#
#   EX_COMMON_OBJ     $(BUILD)/obj/examples/common/example.o: link it in
#   EX_COMMON_HDR     examples/common/example.h
#   $(call ex_common_uses,OBJS)   OBJS include example.h
ifndef EX_COMMON_MK
EX_COMMON_MK := 1

EX_COMMON_OBJ := $(BUILD)/obj/examples/common/example.o
EX_COMMON_HDR := examples/common/example.h

# Compiled by the top Makefile's $(BUILD)/obj/%.o rule.
$(EX_COMMON_OBJ): $(EX_COMMON_HDR)

define ex_common_uses
$(1): $(EX_COMMON_HDR)
$(1): ALL_CFLAGS += -Iexamples/common
endef

endif
