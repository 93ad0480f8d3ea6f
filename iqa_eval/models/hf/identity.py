"""What identifies a local checkpoint: its files (by content up to a size, else by size and
mtime), or a hub id with the commit it resolved to."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from iqa_eval.models.base import (
    ModelSpecError,
)

CONTENT_HASH_LIMIT = 64 * 2**20
"""Files up to this size enter a local fingerprint by content; larger ones by size and mtime.

Configs, tokenizers and small weights are then identified exactly, while multi-GB shards are not
read in full on every run; rewriting a shard changes its mtime, so the fingerprint still moves.
"""


def directory_identity(path: str | os.PathLike[str]) -> str:
    """A digest of a checkpoint directory: what from_pretrained can read from it.

    Only top-level files count (from_pretrained reads no subfolders). See CONTENT_HASH_LIMIT
    for which files are hashed by content.
    """
    digest = hashlib.sha256()
    for entry in sorted(Path(path).iterdir()):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        stat = entry.stat()
        if stat.st_size <= CONTENT_HASH_LIMIT:
            mark = hashlib.sha256(entry.read_bytes()).hexdigest()
        else:
            mark = f"{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(f"{entry.name}\0{mark}\n".encode())
    return digest.hexdigest()


def resolve(name: str) -> tuple[str, str | None, str, str]:
    """Where to load from, the revision to pin, the checkpoint's identity, and a readable label.

    A hub checkpoint is identified by the commit of its cached snapshot, and loading is pinned
    to that commit so that weights fetched later belong to the config read now.
    """
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local), None, directory_identity(local), local.resolve().name
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelSpecError(f"{name} is not a directory")
    from huggingface_hub import hf_hub_download

    try:
        # Online this resolves the branch to its current commit; offline it returns the cached one.
        cached = hf_hub_download(name, "config.json")
    except Exception as err:
        raise ModelSpecError(
            f"{name} is not a local directory, and neither in the Hugging Face cache nor "
            f"downloadable ({type(err).__name__}: {err})"
        ) from None
    commit = Path(cached).parent.name
    return name, commit, commit, name
