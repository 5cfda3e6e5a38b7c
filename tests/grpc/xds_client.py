"""A proxyless gRPC client for the tests: calls /bosun.test.Echo/Say on TARGET (an xds:/// URI,
resolved through the xDS server named in $GRPC_XDS_BOOTSTRAP) every 100 ms and prints one line
per call: "ok <reply>" or "error <code> <details>". Runs until SIGTERM, for DEADLINE seconds at
most, or until its parent (the test) exits.

Usage: xds_client.py TARGET DEADLINE
"""
import sys
import threading
import time

import grpc
from echo_server import watch_parent


def main():
    target, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
    stop = threading.Event()
    threading.Thread(target=watch_parent, args=(stop,), daemon=True).start()
    with grpc.insecure_channel(target) as channel:
        say = channel.unary_unary("/bosun.test.Echo/Say")
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                reply = say(b"", timeout=2, wait_for_ready=True)
                print("ok", reply.decode(), flush=True)
            except grpc.RpcError as e:
                print("error", e.code().name, (e.details() or "").replace("\n", " "), flush=True)
            stop.wait(0.1)


if __name__ == "__main__":
    main()
