#!/usr/bin/python3
"""One gRPC call to any facet method, as any client might make it -- an honest
one or an attacker on the same network (tests/cli/security.sh). Compiles
facet's .proto files with protoc, builds the request from JSON, and prints
one JSON object: {"code": "OK" | "UNAUTHENTICATED" | ..., "message": ...,
"response": {...}}. Exit status 0 whatever the call's status. A streaming
method (StepStream) gets the one request and gives its first reply.

  rpc_call.py PROTO_DIR ADDR /facet.v1.Worker/Load '{"epoch": "5", "modelDir": "/x"}'
      [--token-file F] [--api-key K] [--tls-ca F --tls-cert F --tls-key F --tls-name NAME]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import grpc

# method path -> (request message, response message); the names are proto's
METHODS = {
    "/facet.v1.Coordinator/Register": ("worker", "RegisterRequest", "RegisterResponse"),
    "/facet.v1.Coordinator/KvSet": ("worker", "KvSetRequest", "KvSetResponse"),
    "/facet.v1.Coordinator/KvGet": ("worker", "KvGetRequest", "KvGetResponse"),
    "/facet.v1.Worker/Load": ("worker", "LoadRequest", "LoadResponse"),
    "/facet.v1.Worker/InitComm": ("worker", "InitCommRequest", "InitCommResponse"),
    "/facet.v1.Worker/Step": ("worker", "StepRequest", "StepResponse"),
    "/facet.v1.Worker/StepStream": ("worker", "StepRequest", "StepStreamReply"),  # a stream: one request, one reply
    "/facet.v1.Worker/Abort": ("worker", "AbortRequest", "AbortResponse"),
    "/facet.v1.Worker/Health": ("worker", "HealthRequest", "HealthResponse"),
    "/facet.v1.Facet/Tokenize": ("generate", "TokenizeRequest", "TokenizeResponse"),
    "/facet.v1.Facet/ModelInfo": ("generate", "ModelInfoRequest", "ModelInfoResponse"),
    "/grpc.health.v1.Health/Check": ("health", "HealthCheckRequest", "HealthCheckResponse"),
}


def load_modules(proto_dir):
    out = tempfile.mkdtemp(prefix="facet-pb2-")
    subprocess.run(["protoc", f"-I{proto_dir}", f"--python_out={out}", "facet/v1/generate.proto",
                    "facet/v1/worker.proto"], check=True)
    subprocess.run(["protoc", f"-I{proto_dir}/grpc/health/v1", f"--python_out={out}", "health.proto"], check=True)
    sys.path.insert(0, out)
    from facet.v1 import generate_pb2, worker_pb2  # noqa: E402
    import health_pb2  # noqa: E402
    return {"generate": generate_pb2, "worker": worker_pb2, "health": health_pb2}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("proto_dir")
    ap.add_argument("addr")
    ap.add_argument("method", choices=sorted(METHODS))
    ap.add_argument("request", nargs="?", default="{}")
    ap.add_argument("--token-file")
    ap.add_argument("--api-key")
    ap.add_argument("--tls-ca")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-name", default="facet-coordinator")
    a = ap.parse_args()
    from google.protobuf import json_format

    mods = load_modules(a.proto_dir)
    mod, req_name, resp_name = METHODS[a.method]
    req_type, resp_type = getattr(mods[mod], req_name), getattr(mods[mod], resp_name)
    req = json_format.Parse(a.request, req_type())
    if a.tls_ca:
        creds = grpc.ssl_channel_credentials(read(a.tls_ca), read(a.tls_key) if a.tls_key else None,
                                             read(a.tls_cert) if a.tls_cert else None)
        channel = grpc.secure_channel(a.addr, creds, options=[("grpc.ssl_target_name_override", a.tls_name)])
    else:
        channel = grpc.insecure_channel(a.addr)
    metadata = []
    if a.token_file:
        metadata.append(("x-facet-cluster-token", read(a.token_file).decode().strip()))
    if a.api_key:
        metadata.append(("authorization", f"Bearer {a.api_key}"))
    streaming = a.method.endswith("Stream")
    factory = channel.stream_stream if streaming else channel.unary_unary
    call = factory(a.method, request_serializer=req_type.SerializeToString, response_deserializer=resp_type.FromString)
    try:
        if streaming:
            replies = call(iter([req]), timeout=10, metadata=metadata or None)
            resp = next(replies)
            replies.cancel()
        else:
            resp = call(req, timeout=10, metadata=metadata or None)
        out = {"code": "OK", "message": "", "response": json_format.MessageToDict(resp, including_default_value_fields=True)}
    except grpc.RpcError as e:
        out = {"code": e.code().name, "message": e.details() or "", "response": None}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
