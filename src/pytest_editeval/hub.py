"""Where the files of a dataset or a model come from: a local folder, or a snapshot from ModelScope or
Hugging Face.

Hub clients are imported only here, only when a hub id is given. With `offline`, the hub's own cache is used
without any network call (ModelScope's `local_files_only=True` returns an already-cached snapshot at once;
without it, an offline machine spends ~22 s retrying before NetworkError even when the data is cached).
Both clients fall back to their cache by themselves when the hub cannot be reached.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

HUBS = ("modelscope", "huggingface")
HUB_NAMES = {"modelscope": "ModelScope", "huggingface": "Hugging Face"}
DATA_PATTERNS = ["*.parquet", "**/*.parquet", "*.arrow", "**/*.arrow", "*.json", "**/*.json", "*.md"]


def resolve_dataset(spec: str, hub: str, offline: bool) -> Path:
    local = Path(spec).expanduser()
    if local.exists():
        return local.resolve()
    if spec.count("/") != 1 or spec.startswith((".", "/")):
        raise InputError(
            f"dataset {spec!r} is neither an existing folder nor a hub id like 'stepfun-ai/GEdit-Bench'"
        )
    return snapshot(spec, hub, "dataset", offline=offline, allow_patterns=DATA_PATTERNS,
                    local_hint="--editeval-dataset a local folder")


def snapshot(repo_id: str, hub: str, repo_type: str, *, revision: str | None = None, offline: bool = False,
             allow_patterns: list[str] | None = None, local_hint: str = "a local folder") -> Path:
    """The folder of a hub snapshot (downloaded, or from the hub's cache), or InputError with one line that
    tells a missing repository from a missing cache, a refused access and a network failure."""
    name = HUB_NAMES[hub]
    try:
        if hub == "modelscope":
            from modelscope import snapshot_download
        else:
            from huggingface_hub import snapshot_download
    except ImportError:
        extra = "pip install modelscope" if hub == "modelscope" else "pip install 'pytest-editeval[huggingface]'"
        raise InputError(f"getting {repo_id} from {name} needs its client: {extra}") from None
    kwargs = {"repo_type": repo_type, "revision": revision, "local_files_only": offline}
    if allow_patterns is not None:
        kwargs["allow_patterns"] = allow_patterns
    try:
        return Path(snapshot_download(repo_id, **kwargs))
    except Exception as exc:  # the hub clients raise many types (NetworkError, HTTPError, ValueError...)
        raise InputError(_snapshot_failed(repo_id, repo_type, name, revision, offline, exc, local_hint)) from None


def _snapshot_failed(repo_id: str, repo_type: str, hub: str, revision: str | None, offline: bool,
                     exc: Exception, local_hint: str) -> str:
    what = f"{repo_type} {repo_id}" + (f" at revision {revision}" if revision else "")
    kind = type(exc).__name__
    text = str(exc)
    if offline:
        return (f"{what} is not in the {hub} cache (--editeval-offline): run once with network access, "
                f"or pass {local_hint}")
    if "RevisionNotFound" in kind:
        return f"{what}: no such revision on {hub}: check the revision, or pass {local_hint}"
    if "NotFound" in kind or "NotExist" in kind or " 404" in text:
        return f"{what} was not found on {hub}: check the id, or pass {local_hint}"
    if "Gated" in kind or " 401" in text or " 403" in text:
        return (f"{what}: access refused by {hub} ({kind}): log in (HF_TOKEN or `modelscope login`) with an "
                f"account that may read it, or pass {local_hint}")
    reason = (text.splitlines() or [kind])[0][:200]
    return (f"cannot download {what} from {hub} ({kind}: {reason}): check the network, use --editeval-offline "
            f"with a warmed cache, or pass {local_hint}")
