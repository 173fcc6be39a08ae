# examples/user: the UserService example (examples/user/README.md).
# Included by the top Makefile through examples/examples.mk.
#
#   $(BUILD)/bin/user_server   the server (store in memory or SQLite)
#   $(BUILD)/bin/user_client   the tutorial's six client steps
#   $(BUILD)/tests/examples/user_store_test   the store's unit tests, run by
#                                             tests/examples/user.sh

# The rules below must not become make's default goal (this file is
# included before the top Makefile's `all`): remember it, restore at the end.
USER__DEFAULT_GOAL := $(.DEFAULT_GOAL)

# examples/common (flags, TLS, health, reflection, signals): EX_COMMON_OBJ.
include examples/common/common.mk

# user.pb-c.{c,h} and user.mrpc.{c,h} into $(BUILD)/gen/ (codegen/codegen.mk).
$(eval $(call mrpc_protos,examples/user,user.proto))

USER_SQLITE_LIBS := $(shell pkg-config --libs sqlite3 2>/dev/null || \
                      echo -lsqlite3)
USER_GEN_OBJS := $(BUILD)/obj/gen/user.pb-c.o $(BUILD)/obj/gen/user.mrpc.o
USER_GEN_HDRS := $(BUILD)/gen/user.pb-c.h $(BUILD)/gen/user.mrpc.h
USER_STORE_OBJ := $(BUILD)/obj/examples/user/user_store.o
USER_SERVER_OBJ := $(BUILD)/obj/examples/user/user_server.o
USER_CLIENT_OBJ := $(BUILD)/obj/examples/user/user_client.o
USER_TEST := $(BUILD)/tests/examples/user_store_test
USER_TEST_OBJ := $(BUILD)/obj/tests/examples/user/store_test.o

PROGRAMS += $(BUILD)/bin/user_server $(BUILD)/bin/user_client
EXAMPLE_TESTS += tests/examples/user.sh

# `make all` (through `tests`) builds the store's unit tests too.
tests: $(USER_TEST)

# The objects are compiled by the top Makefile's $(BUILD)/obj/%.o rule; here
# only what they include.  Objects that include generated headers also wait
# for every header generated so far (codegen.mk's rule for parallel builds).
$(USER_SERVER_OBJ) $(USER_CLIENT_OBJ): | $(MRPC_GEN_HDRS)
$(eval $(call ex_common_uses,$(USER_SERVER_OBJ) $(USER_CLIENT_OBJ)))
$(USER_SERVER_OBJ) $(USER_CLIENT_OBJ): $(USER_GEN_HDRS)
$(USER_SERVER_OBJ) $(USER_STORE_OBJ) $(USER_TEST_OBJ): \
    examples/user/user_store.h
$(USER_TEST_OBJ): ALL_CFLAGS += -Iexamples/user

$(BUILD)/bin/user_server: $(USER_SERVER_OBJ) $(EX_COMMON_OBJ) \
                          $(USER_STORE_OBJ) \
                          $(USER_GEN_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(USER_SQLITE_LIBS)

$(BUILD)/bin/user_client: $(USER_CLIENT_OBJ) $(EX_COMMON_OBJ) \
                          $(USER_GEN_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(USER_TEST): $(USER_TEST_OBJ) $(USER_STORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(USER_SQLITE_LIBS) -lpthread

.DEFAULT_GOAL := $(USER__DEFAULT_GOAL)
