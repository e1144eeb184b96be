"""The `vllm` judge backend: the plugin runs `vllm serve MODEL` on a free loopback port for the run and asks it
with the openai backend. No key to find or pay for: a random one, made for the run, reaches the server through
VLLM_API_KEY (never on its command line), so other users of the machine cannot use the port.

The model (and a LoRA adapter) come from a folder or a hub id through the same hub code as model mode, so the
server is given a local folder and the results name the exact weights by their content digest. The server starts
on the first request (a fully cached run starts none), with a progress line while it loads and a start-up
timeout; it is stopped at the end of the session, on Ctrl-C and on a failed start, and a crash mid-run stops the
run with one line that ends with its log's tail. Its process group is ended by a guard process if pytest itself
dies (kill -9 included). `--editeval-judge-serve-command` names the command that runs vLLM's CLI (default
`vllm`); the tests run the loopback judge through this same code path instead.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_editeval.errors import InputError
from pytest_editeval.judges import Answer
from pytest_editeval.judges.options import LOCAL_MODEL
from pytest_editeval.judges.requests import Request
from pytest_editeval.judges.settings import JudgeFacts, JudgeSettings, JudgeSpec, require_model, resolve_adapter, sample_seed
from pytest_editeval.options.types import Option, number, shell_words

if TYPE_CHECKING:
    from pytest_editeval.data.cache import Cache
    from pytest_editeval.judges.managed_server import ManagedServer
    from pytest_editeval.judges.openai_http import JudgeClient

ADAPTER_NAME = "editeval-judge-adapter"  # the name requests use when the adapter is served as a LoRA module
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts
VLLM_DEFAULT_MAX_LORA_RANK = 16
# What the plugin itself passes to `vllm serve`: the user's --editeval-judge-serve-args must not set it.
RESERVED_SERVE_ARGS = ("--host", "--port", "--served-model-name", "--api-key", "--lora-modules")

OPTIONS = (
    *LOCAL_MODEL,
    Option("judge-serve-command", "vllm: the command that runs vLLM's CLI (default {default}); the plugin appends "
           "`serve MODEL --host 127.0.0.1 --port P ...`", metavar="CMD", default="vllm", field="serve_command",
           panel_key="serve_command", one_judge=True),
    Option("judge-serve-args", "vllm: more arguments for `vllm serve`, one string split as a shell would, e.g. "
           "'--tensor-parallel-size 4 --max-model-len 8192'", shell_words, metavar="ARGS", default=(), field="serve_args",
           panel_key="serve_args", one_judge=True),
    Option("judge-startup-timeout", "vllm: seconds the server may take to answer its health check (default "
           "{default})", number(float, 0, False), metavar="S", default=1800, field="startup_timeout_s",
           panel_key="startup_timeout", one_judge=True),
)


def configure(spec: JudgeSpec, facts: JudgeFacts) -> JudgeSpec:
    """One server for the run, started by this process: no xdist; the plugin's own serve arguments kept."""
    require_model(spec)
    if not facts.single_process:
        if facts.panel:
            raise InputError(f"{facts.panel}: a vllm judge starts one server for the run: run it without -n, or "
                             "start `vllm serve` yourself and name it as an openai judge")
        raise InputError("--editeval-judge-backend vllm starts one server for the run: run it without -n, or start "
                         "`vllm serve` yourself and pass --editeval-judge-backend openai --editeval-judge-url "
                         "http://127.0.0.1:PORT/v1")
    serve_args = tuple(spec.serve_args)
    reserved = [a for a in serve_args if a.split("=", 1)[0] in RESERVED_SERVE_ARGS]
    if reserved:
        raise InputError(f"--editeval-judge-serve-args must not set {', '.join(reserved)}: the plugin passes "
                         f"{', '.join(RESERVED_SERVE_ARGS)} itself")
    return spec.with_values(serve_args=serve_args)


def create(spec: JudgeSpec, *, stop: threading.Event, max_in_flight: int, cache: "Cache", say, workdir: Path,
           **_) -> "ManagedVllmJudge":
    from pytest_editeval.data.cache import folder_identity
    from pytest_editeval.data.hub import resolve
    from pytest_editeval.judges import install_hint

    command = shlex.split(spec.serve_command)
    if not command or (shutil.which(command[0]) is None and not Path(command[0]).is_file()):
        raise InputError(f"--editeval-judge-backend vllm cannot find {command[0] if command else 'a command'!r}: "
                         f"{install_hint('vllm')} on a CUDA machine, or name vLLM's command with "
                         "--editeval-judge-serve-command")
    folder = resolve(spec.model, spec.hub, "model", offline=spec.offline, option="--editeval-judge-model",
                     example="Qwen/Qwen2.5-VL-72B-Instruct", what="judge model")
    adapter = resolve_adapter(spec)
    return ManagedVllmJudge(spec, command, folder, adapter, folder_identity(folder, cache),
                            folder_identity(adapter, cache) if adapter is not None else None,
                            stop=stop, max_in_flight=max_in_flight, say=say, log_path=workdir / "logs" / "vllm-serve.log")


class ManagedVllmJudge:
    backend = "vllm"
    deterministic = False  # vLLM's replies depend on their batch-mates, even greedy

    def __init__(self, spec: JudgeSpec, command: list[str], folder: Path, adapter: Path | None, digest: str,
                 adapter_digest: str | None, *, stop: threading.Event, max_in_flight: int, say,
                 log_path: Path) -> None:
        self.spec = spec
        self.command = command
        self.folder = folder
        self.adapter = adapter
        self.digest = digest
        self.adapter_digest = adapter_digest
        self.stop = stop
        self.max_in_flight = max_in_flight
        self.say = say
        self.log_path = log_path
        self.server: ManagedServer | None = None
        self.client: JudgeClient | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    # ---- the Judge interface -------------------------------------------------------------------------------
    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent if self.client is not None else 0

    @property
    def parse_retries(self) -> int:
        return self.spec.parse_retries

    @property
    def row_deadline_s(self) -> float:
        return self.spec.row_deadline_s

    def request_parameters(self, sample: int = 0) -> dict:
        s = self.spec
        values = {"max_tokens": s.max_tokens, "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k,
                  "seed": sample_seed(s.seed, sample)}
        return {name: value for name, value in values.items() if value is not None}

    def identity(self, sample: int = 0) -> dict:
        # Not the endpoint: its port changes every run, the weights and parameters do not.
        return {"backend": self.backend, "model_digest": self.digest, "adapter_digest": self.adapter_digest,
                "serve_args": list(self.spec.serve_args), **self.request_parameters(sample)}

    def usage(self) -> dict:
        if self.client is None:
            return {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0}
        return self.client.usage()

    def describe(self) -> dict:
        return {"backend": self.backend, "model": self.spec.model, "digest": self.digest,
                "adapter_digest": self.adapter_digest, "recipe": self.spec.recipe, "host": "127.0.0.1",
                "parameters": {**self.request_parameters(), "serve_args": list(self.spec.serve_args)}}

    def notes(self) -> list[str]:
        server = self.server
        if server is None or server.started_in is None:
            return []
        return [f"{server.name} (pid {server.pid}) ready in {server.started_in:.1f} s; log {server.log_path}",
                *(self.client.notes() if self.client is not None else [])]

    def answer(self, request: Request, deadline: float | None = None, sample: int = 0) -> Answer:
        waited = self._ensure_started()
        # The row deadline counts the judge's answering, not the server's start-up.
        return self.client.answer(request, deadline + waited if deadline is not None else None, sample)

    def ask(self, request: Request, deadline: float | None = None, sample: int = 0) -> str:
        return self.answer(request, deadline, sample).text

    def interrupt(self) -> None:
        self.stop.set()  # a start in progress notices it and stops the server
        if self.client is not None:
            self.client.interrupt()

    def close(self) -> None:
        self._closed = True
        with self._start_lock:  # after a start in progress has given up
            if self.server is not None:
                self.server.close()
            if self.client is not None:
                self.client.close()

    # ---- the server ----------------------------------------------------------------------------------------
    def _ensure_started(self) -> float:
        """Seconds this request waited for the server to start (0 once it runs)."""
        if self.client is not None:
            return 0.0
        began = time.monotonic()
        with self._start_lock:
            if self.client is None:
                self._start()
        return time.monotonic() - began

    def _start(self) -> None:
        from pytest_editeval.errors import SampleError
        from pytest_editeval.judges.managed_server import ManagedServer, free_loopback_port
        from pytest_editeval.judges.openai_http import JudgeClient

        if self._closed or self.stop.is_set():
            raise SampleError("run interrupted before the judge answered")
        key = secrets.token_urlsafe(24)
        port = free_loopback_port()
        server = ManagedServer("vllm serve", self.serve_command(port), port=port, log_path=self.log_path,
                               env={**os.environ, "VLLM_API_KEY": key}, stop=self.stop, say=self.say,
                               startup_timeout_s=self.spec.startup_timeout_s)
        self.server = server
        server.start()
        s = self.spec
        settings = JudgeSettings.of(s, url=f"http://127.0.0.1:{port}/v1", api_key=key, top_k=True,
                                    model=ADAPTER_NAME if self.adapter else self.served_name)
        client = JudgeClient(settings, stop=self.stop, max_in_flight=self.max_in_flight, recipe=s.recipe)
        server.watch(lambda message: _crashed(client, message))
        self.client = client

    @property
    def served_name(self) -> str:
        return self.spec.model

    def serve_command(self, port: int) -> list[str]:
        command = [*self.command, "serve", str(self.folder), "--host", "127.0.0.1", "--port", str(port),
                   "--served-model-name", self.served_name]
        args = list(self.spec.serve_args)
        if self.adapter is not None:
            command += ["--enable-lora", "--lora-modules", f"{ADAPTER_NAME}={self.adapter}"]
            rank = _lora_rank(self.adapter)
            if rank > VLLM_DEFAULT_MAX_LORA_RANK and not any(a.startswith("--max-lora-rank") for a in args):
                command += ["--max-lora-rank", str(next((r for r in LORA_RANKS if r >= rank), rank))]
        return command + args


def _crashed(client: "JudgeClient", message: str) -> None:
    """The server died mid-run: every request in flight or still to come fails with this one line."""
    from pytest_editeval.errors import JudgeFatalError

    client.fail(JudgeFatalError(message, usage=False))


def _lora_rank(adapter: Path) -> int:
    try:
        return int(json.loads((adapter / "adapter_config.json").read_text("utf-8")).get("r") or 0)
    except (OSError, ValueError, TypeError):
        return 0
