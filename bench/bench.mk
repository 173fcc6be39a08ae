# Benchmark harness (issue 6): bench/ builds into $(BUILD)/bench/.
#
#   make bench         deps (bench/deps.sh), lib, the bench programs, then the
#                      full run (bench/run.sh): the table is printed and
#                      written to $(BUILD)/bench/results.md (about 10 min on
#                      2 cores).  BENCH_ARGS is passed to run.sh.
#   make bench-smoke   the same programs, every workload once with tiny
#                      counts: checks that the bench runs (< 60 s); no timing
#                      is judged.
#   make bench-build   only the programs.
#
# Generated code (protoc-c for C, protoc + grpc_cpp_plugin for C++) goes to
# $(BUILD)/bench/gen/ and is never committed.  Included from the top Makefile,
# so BUILD, STATIC, DEP_CFLAGS, DEP_LIBS come from there.

BENCH_DIR   := $(BUILD)/bench
BENCH_GEN   := $(BENCH_DIR)/gen
BENCH_OBJ   := $(BENCH_DIR)/obj
BENCH_BIN   := $(BENCH_DIR)/bin
BENCH_ARGS  ?=

BENCH_CC_FLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -O2 -g \
                   -Iinclude -Ibench -I$(BENCH_GEN) $(DEP_CFLAGS)
BENCH_CXX       ?= g++
BENCH_CXX_FLAGS  = -std=c++17 -O2 -g -Wall -Ibench -I$(BENCH_GEN) \
                   $(shell pkg-config --cflags grpc++ protobuf 2>/dev/null)
BENCH_CXX_LIBS   = $(shell pkg-config --libs grpc++ protobuf 2>/dev/null || \
                     echo -lgrpc++ -lgrpc -lgpr -lprotobuf) -lpthread

BENCH_C_PROGS   := $(BENCH_BIN)/mrpc_server $(BENCH_BIN)/mrpc_client \
                   $(BENCH_BIN)/floor_server $(BENCH_BIN)/idle_conns
BENCH_CXX_PROGS := $(BENCH_BIN)/grpc_server $(BENCH_BIN)/grpc_client
BENCH_HEADERS   := bench/bench_methods.h bench/bench_util.h

.PHONY: bench bench-smoke bench-build bench-deps

bench-deps:
	bench/deps.sh

bench-build: $(BENCH_C_PROGS) $(BENCH_CXX_PROGS)

bench: lib bench-deps
	$(MAKE) --no-print-directory bench-build
	BUILD=$(BUILD) BENCH_COMMAND="make bench$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" \
	    bench/run.sh $(BENCH_ARGS)

# The run itself is capped at 60 s (it takes about 15 s); the EXIT trap of
# run.sh stops its servers when the cap hits.
bench-smoke: lib bench-deps
	$(MAKE) --no-print-directory bench-build
	BUILD=$(BUILD) BENCH_COMMAND="make bench-smoke" \
	    timeout -k 5 60 bench/run.sh --smoke

$(BENCH_GEN)/bench.pb-c.c $(BENCH_GEN)/bench.pb-c.h &: bench/bench.proto
	@mkdir -p $(BENCH_GEN)
	$(PROTOC_C) --c_out=$(BENCH_GEN) -Ibench $<

$(BENCH_GEN)/bench.pb.cc $(BENCH_GEN)/bench.pb.h \
$(BENCH_GEN)/bench.grpc.pb.cc $(BENCH_GEN)/bench.grpc.pb.h &: bench/bench.proto
	@mkdir -p $(BENCH_GEN)
	protoc -Ibench --cpp_out=$(BENCH_GEN) --grpc_out=$(BENCH_GEN) \
	    --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) $<

$(BENCH_OBJ)/bench.pb-c.o: $(BENCH_GEN)/bench.pb-c.c $(BENCH_GEN)/bench.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CC_FLAGS) -Wno-unused-parameter -c $< -o $@

$(BENCH_OBJ)/%.o: bench/%.c $(BENCH_HEADERS) $(BENCH_GEN)/bench.pb-c.h \
                  $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CC_FLAGS) -c $< -o $@

$(BENCH_OBJ)/%.o: bench/%.cc $(BENCH_HEADERS) $(BENCH_GEN)/bench.grpc.pb.h \
                  $(BENCH_GEN)/bench.pb.h
	@mkdir -p $(dir $@)
	$(BENCH_CXX) $(BENCH_CXX_FLAGS) -c $< -o $@

$(BENCH_OBJ)/gen/%.o: $(BENCH_GEN)/%.cc $(BENCH_GEN)/bench.pb.h \
                      $(BENCH_GEN)/bench.grpc.pb.h
	@mkdir -p $(dir $@)
	$(BENCH_CXX) $(BENCH_CXX_FLAGS) -c $< -o $@

$(BENCH_BIN)/mrpc_%: $(BENCH_OBJ)/mrpc_%.o $(BENCH_OBJ)/bench.pb-c.o $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(LDLIBS)

$(BENCH_BIN)/floor_server: $(BENCH_OBJ)/floor_server.o
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@ $(DEP_LIBS)

$(BENCH_BIN)/idle_conns: $(BENCH_OBJ)/idle_conns.o
	@mkdir -p $(dir $@)
	$(CC) $^ -o $@

$(BENCH_BIN)/grpc_%: $(BENCH_OBJ)/grpc_%.o $(BENCH_OBJ)/gen/bench.pb.o \
                     $(BENCH_OBJ)/gen/bench.grpc.pb.o
	@mkdir -p $(dir $@)
	$(BENCH_CXX) $^ -o $@ $(BENCH_CXX_LIBS)
