"""A gRPC backend for the proxyless tests: answers /bosun.test.Echo/Say with its own name.

Usage: echo_server.py PORT NAME. Prints "ready" once serving; stops on SIGTERM or when its
its parent (the test) exits. Requests and replies are raw bytes (no generated code needed).
"""
import os
import signal
import sys
import threading
from concurrent import futures

import grpc


def watch_parent(stop):
    """Sets `stop` when the process that started this one is gone (no orphans)."""
    parent = os.getppid()
    while not stop.wait(0.5):
        if os.getppid() != parent:
            stop.set()


def main():
    port, name = int(sys.argv[1]), sys.argv[2].encode()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: name)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bosun.test.Echo", {"Say": handler})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=watch_parent, args=(stop,), daemon=True).start()
    print("ready", flush=True)
    stop.wait()
    server.stop(grace=0)


if __name__ == "__main__":
    main()
