"""Where the files of a dataset or a model come from: a local folder, or a snapshot from ModelScope or
Hugging Face.

Hub clients are imported only here, only when a hub id is given. With `offline`, the hub's own cache is used
without any network call (ModelScope's `local_files_only=True` returns an already-cached snapshot at once;
without it, an offline machine spends ~22 s retrying before NetworkError even when the data is cached).
Both clients fall back to their cache by themselves when the hub cannot be reached.
"""

from __future__ import annotations

from pathlib import Path

from pytest_editeval.errors import InputError

HUB_NAMES = {"modelscope": "ModelScope", "huggingface": "Hugging Face"}
HUBS = tuple(HUB_NAMES)
DATA_PATTERNS = ["*.parquet", "**/*.parquet", "*.arrow", "**/*.arrow", "*.json", "**/*.json", "*.md"]


EXAMPLE_IDS = {"dataset": "stepfun-ai/GEdit-Bench", "model": "Qwen/Qwen-Image-Edit"}  # in one-line errors


def resolve_dataset(spec: str, hub: str, offline: bool, allow_patterns: list[str] | None = None) -> Path:
    """A dataset's local folder (or file). `allow_patterns`: the only files fetched from the hub (default: the
    data and metadata files of a Parquet/Arrow dataset)."""
    return resolve(spec, hub, "dataset", offline=offline, allow_patterns=allow_patterns or DATA_PATTERNS)


def resolve(spec: str, hub: str, repo_type: str, *, revision: str | None = None, offline: bool = False,
            allow_patterns: list[str] | None = None, option: str | None = None, example: str | None = None,
            what: str | None = None) -> Path:
    """A local folder as it is, else the folder of a hub snapshot (downloaded, or from the hub's cache).
    Failures are InputError with one line that tells a path typo, a missing repository or revision, a refused
    access, a missing cache and a network failure apart. `option`, `example` and `what` name the thing in those
    lines when it is not --editeval-dataset / --editeval-model (a judge model, an adapter)."""
    local = Path(spec).expanduser()
    what = what or repo_type
    if local.exists():
        return local.resolve()
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        raise InputError(f"{what} {spec!r} is neither an existing folder nor a hub id like "
                         f"{example or EXAMPLE_IDS[repo_type]!r}")
    local_hint = f"{option or '--editeval-' + repo_type} a local folder"
    name = HUB_NAMES[hub]
    try:
        if hub == "modelscope":
            # modelscope's own snapshot_download is a thin shim over this client (modelscope-hub, installed with
            # modelscope), and importing the modelscope package imports torch whenever torch is installed (its
            # logger probes torch.distributed): 2 s and a torch import in image mode, for nothing.
            from modelscope_hub import HubApi

            download = HubApi().download_repo
        else:
            from huggingface_hub import snapshot_download as download
    except ImportError:
        extra = "pip install modelscope" if hub == "modelscope" else "pip install 'pytest-editeval[huggingface]'"
        raise InputError(f"getting {spec} from {name} needs its client: {extra}") from None
    try:
        return Path(download(spec, repo_type=repo_type, revision=revision, local_files_only=offline,
                             allow_patterns=allow_patterns))
    except Exception as exc:  # the hub clients raise many types (NetworkError, HTTPError, ValueError...)
        raise InputError(_snapshot_failed(spec, what, name, revision, offline, exc, local_hint)) from None


def _snapshot_failed(repo_id: str, repo_type: str, hub: str, revision: str | None, offline: bool,
                     exc: Exception, local_hint: str) -> str:
    what = f"{repo_type} {repo_id}" + (f" at revision {revision}" if revision else "")
    kind = type(exc).__name__
    text = str(exc)
    if offline:
        return (f"{what} is not in the {hub} cache (--editeval-offline): run once with network access, "
                f"or pass {local_hint}")
    if "LocalEntryNotFound" in kind:  # Hugging Face: the Hub could not be reached and nothing is cached
        reason = "the hub could not be reached and nothing is cached"
    elif "RevisionNotFound" in kind:
        return f"{what}: no such revision on {hub}: check the revision, or pass {local_hint}"
    elif "NotFound" in kind or "NotExist" in kind or " 404" in text:
        # Hubs answer "not found" for private repositories too, when the request carries no token.
        return f"{what} was not found on {hub}: check the id (or log in, if it is private), or pass {local_hint}"
    elif any(word in kind for word in ("Gated", "PermissionDenied", "Authentication")) or " 401" in text \
            or " 403" in text:
        return (f"{what}: access refused by {hub} ({kind}): log in (HF_TOKEN or `modelscope login`) with an "
                f"account that may read it, or pass {local_hint}")
    else:
        reason = f"{kind}: {(text.splitlines() or [kind])[0][:200]}"
    return (f"cannot download {what} from {hub} ({reason}): check the network, use --editeval-offline with a "
            f"warmed cache, or pass {local_hint}")
