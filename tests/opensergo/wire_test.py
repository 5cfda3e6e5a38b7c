"""An OpenSergo SDK's side of SubscribeConfig, against a running `bosun serve`.

Run by crates/bosun/tests/opensergo_e2e.rs with the test venv's Python (grpcio, grpcio-tools):
stubs are generated from the .proto files next to this script into a temporary directory, then
the client subscribes, receives, ACKs, receives an update after `bosun apply`, NACKs (and checks
that /status shows it), unsubscribes (and checks that no more pushes come), and sends malformed
subscriptions (answered with 4002). Every wait is bounded. On success it prints one JSON line
with what it saw; on failure it exits non-zero saying which step failed.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
RLS = "fault-tolerance.opensergo.io/v1alpha1/RateLimitStrategy"
RLS_TYPE_URL = "type.googleapis.com/io.opensergo.proto.fault_tolerance.v1.RateLimitStrategy"
WAIT = 10.0

STRATEGY = """\
apiVersion: fault-tolerance.opensergo.io/v1alpha1
kind: RateLimitStrategy
metadata: {{ name: cart-rate, namespace: shop, labels: {{ app: cart }} }}
spec: {{ metricType: RequestAmount, limitMode: Local, threshold: {threshold}, statDurationSeconds: 1 }}
"""


def generate_stubs(out):
    from grpc_tools import protoc
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    for proto in ("transport.proto", "rate_limit.proto"):
        code = protoc.main(
            ["protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", proto]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {proto}")
    sys.path.insert(0, out)


class Stream:
    """One SubscribeConfig stream: requests from a queue, responses read by a thread."""

    def __init__(self, stub):
        self.requests = queue.Queue()
        self.responses = queue.Queue()
        self.call = stub.SubscribeConfig(iter(self.requests.get, None))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for response in self.call:
                self.responses.put(response)
        except Exception as error:  # the stream ended: cancelled at the end, or broken
            self.responses.put(error)

    def send(self, request):
        self.requests.put(request)

    def recv(self, step):
        try:
            response = self.responses.get(timeout=WAIT)
        except queue.Empty:
            raise SystemExit(f"{step}: no response within {WAIT}s")
        if isinstance(response, Exception):
            raise SystemExit(f"{step}: the stream failed: {response}")
        return response

    def quiet(self, step, seconds):
        try:
            response = self.responses.get(timeout=seconds)
        except queue.Empty:
            return
        raise SystemExit(f"{step}: unexpected response {response}")

    def close(self):
        self.requests.put(None)
        self.call.cancel()


def check(step, condition, detail=""):
    if not condition:
        raise SystemExit(f"{step}: check failed {detail}")


def apply(bosun, admin, threshold):
    env = dict(os.environ, BOSUN_SERVER=f"http://{admin}")
    done = subprocess.run(
        [bosun, "apply", "-f", "-"], input=STRATEGY.format(threshold=threshold), env=env,
        capture_output=True, text=True, timeout=WAIT,
    )
    if done.returncode != 0:
        raise SystemExit(f"bosun apply failed: {done.stderr}")


def status(admin):
    with urllib.request.urlopen(f"http://{admin}/status", timeout=WAIT) as response:
        return json.load(response)


def wait_status(step, admin, predicate):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = predicate(status(admin))
        if found:
            return found
        time.sleep(0.1)
    raise SystemExit(f"{step}: /status never showed it: {json.dumps(status(admin)['opensergo'])}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--bosun", required=True)
    args = parser.parse_args()

    stubs = tempfile.mkdtemp(prefix="opensergo-stubs-")
    generate_stubs(stubs)
    import grpc
    import rate_limit_pb2
    import transport_pb2 as pb
    import transport_pb2_grpc

    def subscription(request_id, op=pb.SUBSCRIBE, namespace="shop", app="cart", kinds=(RLS,)):
        target = pb.SubscribeRequestTarget(namespace=namespace, app=app, kinds=list(kinds))
        return pb.SubscribeRequest(target=target, op_type=op, request_id=request_id, identifier="python-wire-test")

    def rules(step, response):
        data = response.dataWithVersion
        for rule in data.data:
            check(step, rule.type_url == RLS_TYPE_URL, rule.type_url)
        return data.version, [rate_limit_pb2.RateLimitStrategy.FromString(rule.value) for rule in data.data]

    channel = grpc.insecure_channel(args.grpc)
    grpc.channel_ready_future(channel).result(timeout=WAIT)
    stream = Stream(transport_pb2_grpc.OpenSergoUniversalTransportServiceStub(channel))
    seen = {}

    step = "subscribe"
    stream.send(subscription("sub-1"))
    first = stream.recv(step)
    check(step, first.status.code == 1 and first.response_id == "sub-1" and first.ack == "", str(first))
    check(step, (first.namespace, first.app, first.kind) == ("shop", "cart", RLS), str(first))
    v1, [rule] = rules(step, first)
    check(step, (rule.name, rule.threshold) == ("cart-rate", 5), str(rule))
    check(step, (rule.metric_type, rule.limit_mode) == (1, 1), f"enums on the wire: {rule}")
    check(step, (rule.stat_duration, rule.stat_duration_time_unit) == (1, 2), str(rule))
    seen["initial"] = {"version": v1, "threshold": rule.threshold}
    stream.send(pb.SubscribeRequest(response_ack="ACK", request_id="sub-1", status=pb.Status(code=1)))

    step = "update"
    apply(args.bosun, args.admin, 7)
    push = stream.recv(step)
    check(step, push.status.code == 200 and push.response_id not in ("", "sub-1"), str(push))
    v2, [rule] = rules(step, push)
    check(step, v2 > v1 and rule.threshold == 7, f"version {v2} after {v1}, {rule}")
    seen["update"] = {"version": v2, "threshold": rule.threshold}

    step = "nack"
    nack = pb.Status(code=4007, message="python says no")
    stream.send(pb.SubscribeRequest(response_ack="NACK", request_id=push.response_id, status=nack))

    def nacked(s):
        for client in s["opensergo"]["clients"]:
            if client["identifier"] != "python-wire-test":
                continue
            for sub in client["subscriptions"]:
                if sub["kind"] == RLS and sub["last_nack"] and sub["acked"]:
                    return sub
        return None

    sub = wait_status(step, args.admin, nacked)
    check(step, sub["acked"]["version"] == v1, json.dumps(sub))
    check(step, (sub["last_nack"]["version"], sub["last_nack"]["code"]) == (v2, 4007), json.dumps(sub))
    check(step, sub["last_nack"]["message"] == "python says no", json.dumps(sub))
    seen["nack"] = sub["last_nack"]

    step = "unsubscribe"
    stream.send(subscription("unsub-1", op=pb.UNSUBSCRIBE))
    answer = stream.recv(step)
    check(step, (answer.status.code, answer.response_id, answer.ack) == (1, "unsub-1", "ACK"), str(answer))
    apply(args.bosun, args.admin, 9)
    stream.quiet(step, 1.5)
    seen["unsubscribed"] = True

    step = "invalid"
    for request_id, request in [
        ("bad-app", subscription("bad-app", app="")),
        ("bad-kind", subscription("bad-kind", kinds=("RateLimitStrategy",))),
        ("no-kinds", subscription("no-kinds", kinds=())),
    ]:
        stream.send(request)
        answer = stream.recv(f"{step} {request_id}")
        check(step, (answer.status.code, answer.response_id, answer.ack) == (4002, request_id, "NACK"), str(answer))
        seen.setdefault("invalid", []).append(answer.status.message)

    stream.close()
    channel.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
