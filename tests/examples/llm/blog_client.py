"""The blog's LLM streaming client ("4가지 통신 패턴", Server Streaming),
run against llm_server.

    blog_client.py TARGET [PROMPT]

Below the marked line is the blog's snippet as printed, except that the
literal prompt "안녕" became PROMPT (which defaults to it).  The channel and
stub set-up above it is ours: the blog leaves it out.
"""
import sys

import grpc
import llm_pb2
import llm_pb2_grpc

channel = grpc.insecure_channel(sys.argv[1])
stub = llm_pb2_grpc.LLMServiceStub(channel)
PROMPT = sys.argv[2] if len(sys.argv) > 2 else "안녕"

# ---- the blog's client ---------------------------------------------------
for response in stub.Generate(llm_pb2.GenerateRequest(prompt=PROMPT)):
    if not response.is_finished:
        print(response.token, end="", flush=True)  # 토큰 하나씩 출력
