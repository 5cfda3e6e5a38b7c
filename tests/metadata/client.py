"""A Dubbo application's and a consumer's side of Bosun's metadata centre, against `bosun serve`.

Run by crates/bosun/tests/metadata_e2e.rs with the test venv's Python (grpcio, grpcio-tools) and
a bosun started with a short --metadata-ttl and a small --metadata-max-bytes. Stubs are generated
at test time from the repository's proto/ files (Pixiu's dubbo.networking.v1alpha1 and Bosun's
bosun.metadata.v1). The script publishes with Pixiu's API, reads it back, watches with Bosun's,
sees an update, heartbeats past the TTL, stops heartbeating and sees the expiry, registers an
interface mapping, and sends invalid requests. Every wait is bounded. On success it prints one
JSON line with what it saw; on failure it exits non-zero saying which step failed.
"""

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")
PROTOS = ("dubbo/networking/v1alpha1/metadata.proto", "bosun/metadata/v1/metadata.proto")


def generate_stubs(out):
    from grpc_tools import protoc
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    for proto in PROTOS:
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", proto]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")
    sys.path.insert(0, out)


def fail(step, detail):
    raise SystemExit(f"step {step!r} failed: {detail}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc", required=True, help="bosun's xDS address, HOST:PORT")
    parser.add_argument("--ttl", type=float, required=True, help="bosun's --metadata-ttl, seconds")
    parser.add_argument("--max-bytes", type=int, required=True, help="bosun's --metadata-max-bytes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        generate_stubs(out)
        import grpc
        from dubbo.networking.v1alpha1 import metadata_pb2 as dubbo, metadata_pb2_grpc as dubbo_grpc
        from bosun.metadata.v1 import metadata_pb2 as bosun, metadata_pb2_grpc as bosun_grpc

        channel = grpc.insecure_channel(args.grpc)
        grpc.channel_ready_future(channel).result(timeout=10)
        pixiu = dubbo_grpc.ServiceMetadataServiceStub(channel)
        pixiu_mapping = dubbo_grpc.ServiceNameMappingServiceStub(channel)
        metadata = bosun_grpc.ServiceMetadataServiceStub(channel)
        mapping = bosun_grpc.ServiceNameMappingServiceStub(channel)
        seen = {}

        # Publish and read back with Pixiu's API.
        info = '{"app":"shop","revision":"r1","services":{}}'
        pixiu.Publish(dubbo.PublishServiceMetadataRequest(
            namespace="dev", application_name="shop", revision="r1", metadata_info=info), timeout=10)
        got = pixiu.Get(dubbo.GetServiceMetadataRequest(namespace="dev", application_name="shop", revision="r1"),
                        timeout=10)
        if got.metadata_info != info:
            fail("get", got.metadata_info)
        seen["get"] = got.metadata_info

        # Watch: the current value, then the update.
        events = queue.Queue()
        call = metadata.Watch(bosun.WatchServiceMetadataRequest(namespace="dev", application_name="shop"))

        def read():
            try:
                for event in call:
                    events.put(event)
            except grpc.RpcError as e:
                events.put(e)

        threading.Thread(target=read, daemon=True).start()

        def next_event(step, within):
            try:
                event = events.get(timeout=within)
            except queue.Empty:
                fail(step, f"no event within {within} s")
            if isinstance(event, Exception):
                fail(step, event)
            return event

        first = next_event("watch: current value", 10)
        if first.type != bosun.EVENT_TYPE_PUT or first.metadata_info != info:
            fail("watch: current value", first)
        pixiu.Publish(dubbo.PublishServiceMetadataRequest(
            namespace="dev", application_name="shop", revision="r1", metadata_info="v2"), timeout=10)
        update = next_event("watch: update", 10)
        if update.type != bosun.EVENT_TYPE_PUT or update.metadata_info != "v2":
            fail("watch: update", update)
        seen["update"] = update.metadata_info

        # The interface mapping, with Pixiu's API, read with Bosun's.
        pixiu_mapping.registerServiceAppMapping(dubbo.ServiceMappingRequest(
            namespace="dev", applicationName="shop", interfaceNames=["org.example.Greeter"]), timeout=10)
        apps = mapping.Get(bosun.GetServiceAppMappingRequest(namespace="dev", interface_name="org.example.Greeter"),
                           timeout=10)
        seen["mapping"] = list(apps.application_names)

        # Heartbeats keep everything past the TTL.
        beats_until = time.monotonic() + 2 * args.ttl
        while time.monotonic() < beats_until:
            reply = metadata.Heartbeat(bosun.HeartbeatRequest(namespace="dev", application_name="shop"), timeout=10)
            seen["ttl_seconds"] = reply.ttl_seconds
            time.sleep(args.ttl / 3)
        if not events.empty():
            fail("heartbeats", f"an event while heartbeating: {events.get()}")
        got = pixiu.Get(dubbo.GetServiceMetadataRequest(namespace="dev", application_name="shop", revision="r1"),
                        timeout=10)
        seen["after_heartbeats"] = got.metadata_info

        # No more heartbeats: the expiry comes within TTL + 5 s.
        stopped = time.monotonic()
        expired = next_event("watch: expiry", args.ttl + 5)
        if expired.type != bosun.EVENT_TYPE_DELETED or expired.revision != "r1":
            fail("watch: expiry", expired)
        seen["expired_after_seconds"] = round(time.monotonic() - stopped, 2)
        call.cancel()

        def code_of(step, rpc):
            try:
                rpc()
            except grpc.RpcError as e:
                return [e.code().name, e.details()]
            fail(step, "no error")

        big = "x" * (args.max_bytes + 1)
        seen["errors"] = {
            "expired_get": code_of("expired get", lambda: pixiu.Get(dubbo.GetServiceMetadataRequest(
                namespace="dev", application_name="shop", revision="r1"), timeout=10)),
            "expired_mapping": code_of("expired mapping", lambda: mapping.Get(bosun.GetServiceAppMappingRequest(
                namespace="dev", interface_name="org.example.Greeter"), timeout=10)),
            "empty_namespace": code_of("empty namespace", lambda: pixiu.Publish(dubbo.PublishServiceMetadataRequest(
                application_name="shop", revision="r1", metadata_info=info), timeout=10)),
            "empty_revision": code_of("empty revision", lambda: metadata.Get(bosun.GetServiceMetadataRequest(
                namespace="dev", application_name="shop"), timeout=10)),
            "too_big": code_of("too big", lambda: pixiu.Publish(dubbo.PublishServiceMetadataRequest(
                namespace="dev", application_name="shop", revision="r2", metadata_info=big), timeout=10)),
            "no_interfaces": code_of("no interfaces", lambda: pixiu_mapping.registerServiceAppMapping(
                dubbo.ServiceMappingRequest(namespace="dev", applicationName="shop"), timeout=10)),
            "heartbeat_unknown": code_of("heartbeat unknown", lambda: metadata.Heartbeat(bosun.HeartbeatRequest(
                namespace="dev", application_name="nobody"), timeout=10)),
        }
        print(json.dumps(seen))


if __name__ == "__main__":
    main()
