"""The blog's file upload client ("4가지 통신 패턴", Client Streaming), run
against file_server.

    blog_upload.py TARGET PATH

Below the marked line is the blog's snippet as printed, except that its
example path "/path/to/large_file.zip" became PATH.  The channel and stub
set-up above it is ours: the blog leaves it out.
"""
import sys

import grpc
import file_pb2
import file_pb2_grpc

channel = grpc.insecure_channel(sys.argv[1])
stub = file_pb2_grpc.FileServiceStub(channel)
PATH = sys.argv[2]


# ---- the blog's client ---------------------------------------------------
def generate_chunks(file_path):
    """파일을 청크로 나눠서 yield"""
    with open(file_path, 'rb') as f:
        while True:
            chunk = f.read(1024 * 1024)  # 1MB씩
            if not chunk:
                break
            yield file_pb2.FileChunk(data=chunk)

# 제너레이터를 전달
response = stub.Upload(generate_chunks(PATH))
print(f"Uploaded: {response.total_size} bytes")
