#!/usr/bin/python3
"""An independent gRPC client for facet (Python grpcio, Debian's python3-grpcio),
used by tests/cli/cluster.sh. It compiles facet's .proto files with protoc at
start, then calls facet.v1.Facet and grpc.health.v1.Health by method path.

  grpc_client.py ADDR PROTO_DIR health
  grpc_client.py ADDR PROTO_DIR generate --prompt TEXT [--max-tokens N] [--temperature T]
                                          [--top-k K] [--top-p P] [--seed S] [--ignore-eos]
Prints one JSON object. A failed call prints {"error": CODE, "message": ..., "seconds": ...}
(seconds since the call started) and exits 3.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import grpc


def load_stubs(proto_dir):
    out = tempfile.mkdtemp(prefix="facet-pb2-")
    subprocess.run(["protoc", f"-I{proto_dir}", f"--python_out={out}", "facet/v1/generate.proto"], check=True)
    # health.proto lives under grpc/..., which as a Python package would shadow
    # grpcio itself: compile it from its own directory into a top-level module.
    subprocess.run(["protoc", f"-I{proto_dir}/grpc/health/v1", f"--python_out={out}", "health.proto"], check=True)
    sys.path.insert(0, out)
    from facet.v1 import generate_pb2  # noqa: E402
    import health_pb2  # noqa: E402
    return generate_pb2, health_pb2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("proto_dir")
    ap.add_argument("command", choices=["health", "generate"])
    ap.add_argument("--prompt", default="")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-k", type=int, default=0)
    ap.add_argument("--top-p", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()

    gen, health = load_stubs(args.proto_dir)
    channel = grpc.insecure_channel(args.addr)
    t0 = time.monotonic()
    try:
        if args.command == "health":
            check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                        request_serializer=health.HealthCheckRequest.SerializeToString,
                                        response_deserializer=health.HealthCheckResponse.FromString)
            resp = check(health.HealthCheckRequest(service=""), timeout=5)
            print(json.dumps({"status": health.HealthCheckResponse.ServingStatus.Name(resp.status)}))
            return 0
        generate = channel.unary_stream("/facet.v1.Facet/Generate",
                                        request_serializer=gen.GenerateRequest.SerializeToString,
                                        response_deserializer=gen.GenerateResponse.FromString)
        req = gen.GenerateRequest(prompt=args.prompt, max_tokens=args.max_tokens, ignore_eos=args.ignore_eos,
                                  sampling=gen.SamplingParams(temperature=args.temperature, top_k=args.top_k,
                                                              top_p=args.top_p, seed=args.seed))
        result = {"prompt_ids": [], "output_ids": [], "text": "", "finish_reason": None}
        metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else None
        for msg in generate(req, timeout=300, metadata=metadata):
            result["prompt_ids"] += list(msg.prompt_ids)
            result["output_ids"] += list(msg.token_ids)
            result["text"] += msg.text
            if msg.finish_reason:
                result["finish_reason"] = {1: "stop", 2: "length"}[msg.finish_reason]
        print(json.dumps(result))
        return 0
    except grpc.RpcError as e:
        print(json.dumps({"error": e.code().name, "message": e.details(), "seconds": time.monotonic() - t0}))
        return 3


if __name__ == "__main__":
    sys.exit(main())
