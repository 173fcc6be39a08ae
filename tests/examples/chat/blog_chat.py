"""The blog's chat client ("4가지 통신 패턴", Bidirectional Streaming), run
against chat_server.

    blog_chat.py TARGET < lines

Below the marked line is the blog's run_chat() as printed, except that the
input() prompt "You: " is dropped (it would clutter the output the test
reads) and an end of input counts as "quit".  The channel and stub set-up
is ours: the blog leaves it out.  Its messages carry no user, so the room
names the sender "anon-<n>"; it prints what arrives as "Server: <content>".
"""
import sys
import threading
import queue

import grpc
import chat_pb2
import chat_pb2_grpc

channel = grpc.insecure_channel(sys.argv[1])
stub = chat_pb2_grpc.ChatServiceStub(channel)


def input_or_quit():
    try:
        return input()
    except EOFError:
        return "quit"


# ---- the blog's client ---------------------------------------------------
def run_chat():
    # 보낼 메시지 큐
    outgoing = queue.Queue()

    def generate_messages():
        while True:
            msg = outgoing.get()
            if msg is None:
                break
            yield chat_pb2.ChatMessage(content=msg)

    # 양방향 스트림 시작
    responses = stub.Chat(generate_messages())

    # 응답 수신 스레드
    def receive():
        for response in responses:
            print(f"Server: {response.content}", flush=True)

    recv_thread = threading.Thread(target=receive)
    recv_thread.start()

    # 메시지 전송
    while True:
        user_input = input_or_quit()
        if user_input == "quit":
            outgoing.put(None)
            break
        outgoing.put(user_input)

    recv_thread.join()


run_chat()
