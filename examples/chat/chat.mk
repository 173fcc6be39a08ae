# examples/chat: a chat room, bidirectional streaming (examples/chat/README.md).
# Included by the top Makefile through examples/examples.mk.
#
#   $(BUILD)/bin/chat_server   the room (event-driven handlers)
#   $(BUILD)/bin/chat_client   sends stdin's lines, prints the room
#   $(BUILD)/tests/examples/chat_send_order   checks the library keeps the
#                              order of sends from two threads (run by
#                              tests/examples/chat.sh)

# The rules below must not become make's default goal (this file is
# included before the top Makefile's `all`): remember it, restore at the end.
CHAT__DEFAULT_GOAL := $(.DEFAULT_GOAL)

# examples/common (flags, TLS, health, reflection, signals): EX_COMMON_OBJ.
include examples/common/common.mk

# chat.pb-c.{c,h} and chat.mrpc.{c,h} into $(BUILD)/gen/ (codegen/codegen.mk).
$(eval $(call mrpc_protos,examples/chat,chat.proto))

CHAT_GEN_OBJS := $(BUILD)/obj/gen/chat.pb-c.o $(BUILD)/obj/gen/chat.mrpc.o
CHAT_GEN_HDRS := $(BUILD)/gen/chat.pb-c.h $(BUILD)/gen/chat.mrpc.h
CHAT_SERVER_OBJ := $(BUILD)/obj/examples/chat/chat_server.o
CHAT_CLIENT_OBJ := $(BUILD)/obj/examples/chat/chat_client.o
CHAT_TEST := $(BUILD)/tests/examples/chat_send_order
CHAT_TEST_OBJ := $(BUILD)/obj/tests/examples/chat/send_order.o

PROGRAMS += $(BUILD)/bin/chat_server $(BUILD)/bin/chat_client
EXAMPLE_TESTS += tests/examples/chat.sh

tests: $(CHAT_TEST)

$(CHAT_SERVER_OBJ) $(CHAT_CLIENT_OBJ) $(CHAT_TEST_OBJ): | $(MRPC_GEN_HDRS)
$(eval $(call ex_common_uses,$(CHAT_SERVER_OBJ) $(CHAT_CLIENT_OBJ)))
$(CHAT_SERVER_OBJ) $(CHAT_CLIENT_OBJ) $(CHAT_TEST_OBJ): $(CHAT_GEN_HDRS)

$(BUILD)/bin/chat_server: $(CHAT_SERVER_OBJ) $(EX_COMMON_OBJ) \
                          $(CHAT_GEN_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bin/chat_client: $(CHAT_CLIENT_OBJ) $(EX_COMMON_OBJ) \
                          $(CHAT_GEN_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(CHAT_TEST): $(CHAT_TEST_OBJ) $(CHAT_GEN_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

.DEFAULT_GOAL := $(CHAT__DEFAULT_GOAL)
