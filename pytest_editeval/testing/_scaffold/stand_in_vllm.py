"""A stand-in for `vllm serve`: `python -m pytest_editeval.testing._scaffold.stand_in_vllm serve MODEL --host 127.0.0.1
--port P --served-model-name NAME [vLLM's other arguments, ignored]` runs the loopback judge (judge_server.py) the
way the vllm backend runs vLLM, so that the backend's process management is tested through its own code path
(--editeval-judge-serve-command "python -m pytest_editeval.testing._scaffold.stand_in_vllm").

Like vLLM, it takes its key from VLLM_API_KEY, listens only once "the model is loaded", and answers /health.
Faults come from environment variables (STAND_IN_ENV), which the plugin passes on to the server it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pytest_editeval.testing.judge_server import JudgeServer

STAND_IN_ENV = {
    "EDITEVAL_STANDIN_RECORD": "a file the stand-in writes {pid, pgid, argv, key_set} to once it runs",
    "EDITEVAL_STANDIN_STARTUP_S": "seconds it 'loads the model' before it listens",
    "EDITEVAL_STANDIN_FAIL_AT_START": "a message it prints before it exits with code 1 instead of listening",
    "EDITEVAL_STANDIN_CRASH_AFTER": "it dies (exit 1, a CUDA-like message) when this many requests were answered",
    "EDITEVAL_STANDIN_REQUESTS": "a file it appends each request's parameters to, one JSON line each",
    "EDITEVAL_STANDIN_LATENCY_S": "seconds each answer takes",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stand-in for vllm")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("model")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-model-name")
    args, _ = parser.parse_known_args(argv)
    env = os.environ
    if args.host not in ("127.0.0.1", "localhost"):
        print(f"the stand-in binds loopback only, not {args.host}", flush=True)
        return 2
    if env.get("EDITEVAL_STANDIN_RECORD"):
        with open(env["EDITEVAL_STANDIN_RECORD"], "w", encoding="utf-8") as out:
            json.dump({"pid": os.getpid(), "pgid": os.getpgrp(), "argv": sys.argv[1:] if argv is None else argv,
                       "key_set": bool(env.get("VLLM_API_KEY"))}, out)
    print(f"INFO stand-in vllm: loading {args.model}", flush=True)
    if env.get("EDITEVAL_STANDIN_FAIL_AT_START"):
        print(f"ValueError: {env['EDITEVAL_STANDIN_FAIL_AT_START']}", flush=True)
        return 1
    time.sleep(float(env.get("EDITEVAL_STANDIN_STARTUP_S") or 0))
    server = JudgeServer(api_key=env.get("VLLM_API_KEY", ""), latency=float(env.get("EDITEVAL_STANDIN_LATENCY_S") or 0))
    server.port = args.port
    crash_after = int(env.get("EDITEVAL_STANDIN_CRASH_AFTER") or 0)
    answer = server.handle

    def handle(body, authorized, path="/v1/chat/completions"):
        if crash_after and server.count >= crash_after:
            print("RuntimeError: CUDA error: an illegal memory access was encountered", flush=True)
            os._exit(1)
        if env.get("EDITEVAL_STANDIN_REQUESTS"):
            with open(env["EDITEVAL_STANDIN_REQUESTS"], "a", encoding="utf-8") as out:
                out.write(json.dumps({**{k: v for k, v in body.items() if k != "messages"},
                                      "authorized": authorized}) + "\n")
        return answer(body, authorized, path)

    server.handle = handle
    server.up()
    print(f"INFO stand-in vllm: serving {args.served_model_name or args.model} on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
