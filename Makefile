# libminirpc build.  `make` builds the libraries and every program into
# $(BUILD); `make test` runs the whole suite twice: plain and under
# AddressSanitizer + UndefinedBehaviorSanitizer (in build-asan/).
#
# Variables: BUILD (output dir), SAN=1 (sanitizer build), PREFIX, DESTDIR.
# build/minirpc.pc is for reference; `make install` writes the .pc with the
# PREFIX it is given.

.DEFAULT_GOAL := all

BUILD   ?= build
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
CC      ?= cc
PROTOC_C ?= protoc-c

PKGS    := libnghttp2 libprotobuf-c zlib
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lnghttp2 -lprotobuf-c -lz)

OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -fPIC -fvisibility=hidden \
              -Iinclude -Ilib -I$(BUILD)/gen $(DEP_CFLAGS) $(CFLAGS)
LDLIBS  := $(DEP_LIBS) -lssl -lcrypto -lpthread

ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=all
ALL_CFLAGS += $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
endif

LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
HEADERS  := $(wildcard include/minirpc/*.h)

STATIC  := $(BUILD)/lib/libminirpc.a
# The same objects as a plain archive, internals visible: for the unit tests.
INTERNAL := $(BUILD)/lib/libminirpc-internal.a
SHARED  := $(BUILD)/lib/libminirpc.so

# Generated code for the interop service: protoc-c's messages and
# protoc-gen-minirpc's service (rules: mrpc_protos, codegen/codegen.mk).
GEN_PROTOS := tests/interop/test.proto
GEN_C   := $(patsubst %.proto,$(BUILD)/gen/%.pb-c.c,$(notdir $(GEN_PROTOS))) \
           $(patsubst %.proto,$(BUILD)/gen/%.mrpc.c,$(notdir $(GEN_PROTOS)))
GEN_OBJS := $(GEN_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)

UNIT_TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/test_*.c)))
E2E_TESTS  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/e2e_*.c)))
PROGRAMS   := $(BUILD)/bin/interop_server $(BUILD)/bin/interop_client
# Clients of tests/retry/run.sh and tests/lb/run.sh (via $(BUILD)/tests/%).
TEST_CLIENTS := $(BUILD)/tests/retry/retry_client $(BUILD)/tests/lb/lb_client

.PHONY: all lib programs tests test test-plain test-asan test-tsan demo install \
        uninstall clean

# The protoc plugin and the example apps bring their own rules; they add to
# PROGRAMS and TEST_SCRIPTS.
include codegen/codegen.mk
$(eval $(call mrpc_protos,tests/interop,test.proto))
# The health and reflection services (lib/health.c, lib/reflection.c) are
# generated from lib/proto/ into $(BUILD)/gen/grpc/... and compiled into the
# library, with the plugin's C for descriptor.proto (reflection parses the
# embedded FileDescriptorProtos with it).  docs/services.md.
LIB_PROTOS := grpc/health/v1/health.proto grpc/reflection/v1/reflection.proto \
              grpc/reflection/v1alpha/reflection.proto
$(eval $(call mrpc_protos,lib/proto,$(LIB_PROTOS)))
LIB_GEN_HDRS := $(foreach p,$(LIB_PROTOS),$(BUILD)/gen/$(basename $(p)).pb-c.h \
                  $(BUILD)/gen/$(basename $(p)).mrpc.h) \
                $(CODEGEN_GEN)/google/protobuf/descriptor.pb-c.h
LIB_OBJS += $(foreach p,$(LIB_PROTOS),$(BUILD)/obj/gen/$(basename $(p)).pb-c.o \
              $(BUILD)/obj/gen/$(basename $(p)).mrpc.o) \
            $(BUILD)/obj/gen/codegen/google/protobuf/descriptor.pb-c.o
$(BUILD)/obj/lib/health.o $(BUILD)/obj/lib/reflection.o \
$(BUILD)/obj/tests/e2e_health.o $(BUILD)/obj/tests/e2e_reflection.o: \
    | $(LIB_GEN_HDRS)
# Their --serve mode (tests/examples/services.sh).
$(BUILD)/obj/tests/e2e_health.o $(BUILD)/obj/tests/e2e_reflection.o: \
    tests/services/serve.h tests/e2e_common.h
include examples/examples.mk
.SECONDARY:

all: lib programs tests

lib: $(STATIC) $(SHARED) $(BUILD)/minirpc.pc
programs: $(PROGRAMS)
tests: $(UNIT_TESTS) $(E2E_TESTS) $(TEST_CLIENTS)

$(BUILD)/obj/%.o: %.c $(HEADERS) $(wildcard lib/*.h) | $(GEN_C)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-unused-parameter -c $< -o $@

# One relocatable object whose hidden symbols (library internals, the
# generated health / reflection / descriptor messages) are made local: a
# program that links the archive and has its own copy of, say, health.pb-c.c
# gets no clash.  Only the MRPC_EXTERN API stays global.
$(STATIC): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ $(BUILD)/obj/libminirpc-all.o
	$(CC) -r -nostdlib $^ -o $(BUILD)/obj/libminirpc-all.o
	objcopy --localize-hidden $(BUILD)/obj/libminirpc-all.o
	ar rcs $@ $(BUILD)/obj/libminirpc-all.o

$(INTERNAL): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libminirpc.so.0 $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/minirpc.pc: minirpc.pc.in
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|0.1.0|g' $< > $@

$(BUILD)/bin/interop_%: $(BUILD)/obj/tests/interop/interop_%.o $(GEN_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(GEN_OBJS) $(INTERNAL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) -lcmocka

# The whole suite, plain then under ASan+UBSan.  tests/run.sh prints the
# closing "N passed, N failed" line.
test:
	$(MAKE) all
	$(MAKE) BUILD=build-asan SAN=1 OPT=-O1 all
	tests/run.sh build build-asan

demo: all
	BUILD=$(BUILD) scripts/demo.sh

test-plain: all
	tests/run.sh $(BUILD)

test-asan:
	$(MAKE) BUILD=build-asan SAN=1 OPT=-O1 all
	tests/run.sh build-asan

# Optional: the cmocka suites under ThreadSanitizer (not part of `make test`:
# it needs its own build and roughly doubles the run time).
test-tsan:
	$(MAKE) BUILD=build-tsan OPT=-O1 CFLAGS="-O1 -g -fsanitize=thread" \
	    LDFLAGS=-fsanitize=thread tests
	for t in build-tsan/tests/test_* build-tsan/tests/e2e_*; do \
	    TSAN_OPTIONS=halt_on_error=1 $$t || exit 1; done

install: lib $(BUILD)/bin/protoc-gen-minirpc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR)/minirpc \
	           $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/bin/protoc-gen-minirpc $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libminirpc.so.0.1.0
	ln -sf libminirpc.so.0.1.0 $(DESTDIR)$(LIBDIR)/libminirpc.so.0
	ln -sf libminirpc.so.0 $(DESTDIR)$(LIBDIR)/libminirpc.so
	install -m 644 $(HEADERS) $(DESTDIR)$(INCDIR)/minirpc/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|0.1.0|g' minirpc.pc.in \
	    > $(DESTDIR)$(LIBDIR)/pkgconfig/minirpc.pc

uninstall:
	rm -rf $(DESTDIR)$(INCDIR)/minirpc
	rm -f $(DESTDIR)$(LIBDIR)/libminirpc.* $(DESTDIR)$(LIBDIR)/pkgconfig/minirpc.pc
	rm -f $(DESTDIR)$(PREFIX)/bin/protoc-gen-minirpc

clean:
	rm -rf build build-asan build-tsan
-include bench/bench.mk
