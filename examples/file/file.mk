# examples/file: file upload, client streaming (examples/file/README.md).
# Included by the top Makefile through examples/examples.mk.
#
#   $(BUILD)/bin/file_server   stores uploads in a directory, with SHA-256
#   $(BUILD)/bin/file_client   uploads one file in 1 MiB chunks and checks

# The rules below must not become make's default goal (this file is
# included before the top Makefile's `all`): remember it, restore at the end.
FILE__DEFAULT_GOAL := $(.DEFAULT_GOAL)

# examples/common (flags, TLS, health, reflection, signals): EX_COMMON_OBJ.
include examples/common/common.mk

# file.pb-c.{c,h} and file.mrpc.{c,h} into $(BUILD)/gen/ (codegen/codegen.mk).
$(eval $(call mrpc_protos,examples/file,file.proto))

FILE_GEN_OBJS := $(BUILD)/obj/gen/file.pb-c.o $(BUILD)/obj/gen/file.mrpc.o
FILE_GEN_HDRS := $(BUILD)/gen/file.pb-c.h $(BUILD)/gen/file.mrpc.h
FILE_SERVER_OBJ := $(BUILD)/obj/examples/file/file_server.o
FILE_CLIENT_OBJ := $(BUILD)/obj/examples/file/file_client.o
# SHA-256 through OpenSSL's EVP API.
FILE_CRYPTO_LIBS := $(shell pkg-config --libs libcrypto 2>/dev/null || \
                      echo -lcrypto)

PROGRAMS += $(BUILD)/bin/file_server $(BUILD)/bin/file_client
EXAMPLE_TESTS += tests/examples/file.sh

$(FILE_SERVER_OBJ) $(FILE_CLIENT_OBJ): | $(MRPC_GEN_HDRS)
$(eval $(call ex_common_uses,$(FILE_SERVER_OBJ) $(FILE_CLIENT_OBJ)))
$(FILE_SERVER_OBJ) $(FILE_CLIENT_OBJ): $(FILE_GEN_HDRS)

$(BUILD)/bin/file_server: $(FILE_SERVER_OBJ) $(EX_COMMON_OBJ) \
                          $(FILE_GEN_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(FILE_CRYPTO_LIBS)

$(BUILD)/bin/file_client: $(FILE_CLIENT_OBJ) $(EX_COMMON_OBJ) \
                          $(FILE_GEN_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(FILE_CRYPTO_LIBS)

.DEFAULT_GOAL := $(FILE__DEFAULT_GOAL)
