"""Where the dataset's files come from: a local folder, or a snapshot from ModelScope or Hugging Face.

Hub clients are imported only here, only when a hub id is given. With `offline`, the hub's own cache is used
without any network call (ModelScope's `local_files_only=True` returns an already-cached snapshot at once;
without it, an offline machine spends ~22 s retrying before NetworkError even when the data is cached).
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

HUBS = ("modelscope", "huggingface")
DATA_PATTERNS = ["*.parquet", "**/*.parquet", "*.arrow", "**/*.arrow", "*.json", "**/*.json", "*.md"]


def resolve_dataset(spec: str, hub: str, offline: bool) -> Path:
    local = Path(spec).expanduser()
    if local.exists():
        return local.resolve()
    if spec.count("/") != 1 or spec.startswith((".", "/")):
        raise InputError(
            f"dataset {spec!r} is neither an existing folder nor a hub id like 'stepfun-ai/GEdit-Bench'"
        )
    if hub == "modelscope":
        return _from_modelscope(spec, offline)
    return _from_huggingface(spec, offline)


def _from_modelscope(repo_id: str, offline: bool) -> Path:
    try:
        from modelscope import snapshot_download
    except ImportError as exc:  # pragma: no cover - modelscope is a core dependency
        raise InputError(f"cannot import modelscope ({exc}): pip install modelscope") from None
    try:
        folder = snapshot_download(repo_id, repo_type="dataset", local_files_only=offline)
    except Exception as exc:  # the hub client raises many types (NetworkError, ValueError, HTTPError...)
        raise InputError(_download_failed("ModelScope", repo_id, offline, exc)) from None
    return Path(folder)


def _from_huggingface(repo_id: str, offline: bool) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InputError(
            "--editeval-hub huggingface needs huggingface_hub: pip install 'pytest-editeval[huggingface]'"
        ) from None
    try:
        folder = snapshot_download(repo_id, repo_type="dataset", local_files_only=offline,
                                   allow_patterns=DATA_PATTERNS)
    except Exception as exc:
        raise InputError(_download_failed("Hugging Face", repo_id, offline, exc)) from None
    return Path(folder)


def _download_failed(hub: str, repo_id: str, offline: bool, exc: Exception) -> str:
    reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    if offline:
        return (f"dataset {repo_id} is not in the {hub} cache ({reason}): run once with network access, "
                "or pass --editeval-dataset a local folder")
    return (f"cannot download dataset {repo_id} from {hub} ({type(exc).__name__}: {reason}): check the network, "
            "use --editeval-offline with a warmed cache, or pass --editeval-dataset a local folder")
