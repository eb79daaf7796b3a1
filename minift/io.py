"""Writing files so that a crash never leaves a half-written one behind.

A training run can be killed at any moment (Ctrl-C, ``kill -9``, a laptop lid). If it dies while
``torch.save`` is halfway through ``model.pt``, the previous good checkpoint is gone and the new
one is garbage. The cure is the classic *write-then-rename*: write the whole content to a
temporary file in the same folder, flush it to disk (``fsync``), then ``os.replace`` it over the
target. On POSIX and Windows ``os.replace`` within one file system is atomic: a reader sees either
the old file or the new one, never a mix.

Every checkpoint, report, chart and summary in minift goes through these helpers. A write that
fails (a full disk, no permission) removes its temp file, leaves the previous file intact, and is a
one-line MiniftError naming the path. ``usable_folder`` and ``usable_file`` check an output path
*before* a command starts its work, so a bad ``--out`` fails at once rather than after training.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    If the write fails (a full disk, no permission, a folder in the way) the temp file is removed,
    the previous ``path`` is left as it was, and the failure is a one-line MiniftError naming
    ``path`` and the problem, e.g. ``run/model.pt: cannot write (No space left on device)``.
    """
    from minift.errors import MiniftError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MiniftError(f"{path}: cannot create its folder {path.parent} ({_reason(exc)})") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise MiniftError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file private (0600); give it the usual permissions, as open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        # Leave no temp file behind, whatever went wrong (KeyboardInterrupt included).
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise MiniftError(f"{path}: cannot write ({_reason(exc)})") from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (with a final newline) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def usable_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Make sure ``path`` is a folder minift can write into (creating it if needed), or say why not.

    Checked before any work starts, so a run never trains for an hour and then fails to save.
    An existing *file* at ``path`` is a MiniftError and is left untouched; so is a folder that
    cannot be created (a parent is a file, no permission) or written (a probe file cannot be made).
    """
    from minift.errors import MiniftError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MiniftError(f"{path}: is a file, not a folder (the {what}); choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MiniftError(f"{path}: cannot create the {what} ({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".minift-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MiniftError(f"{path}: cannot write into the {what} ({exc.strerror or exc})") from None
    return path


def usable_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Make sure minift can write the file ``path``, or say why not (the sibling of ``usable_folder``).

    An existing *folder* at ``path`` is a MiniftError and is left untouched; the folder that will
    hold the file must pass ``usable_folder`` (it is created if missing). An existing file at
    ``path`` is fine: it is replaced atomically, and only once the new content is complete.
    """
    from minift.errors import MiniftError

    path = Path(path)
    if path.is_dir():
        raise MiniftError(f"{path}: is a folder, not a file (the {what}); choose another path")
    usable_folder(path.parent, f"folder of the {what}")
    return path


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` to memory first, then write the bytes atomically."""
    import torch  # local import: the rest of this module needs no torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_jsonl(path, what: str = "data", skip_blank: bool = False) -> list[tuple[dict, int]]:
    """(object, line number) for every line of a JSONL file.

    A missing file, text that is not UTF-8, a line that is not JSON or not an object (or is blank,
    unless ``skip_blank``) is a MiniftError naming ``file:line``.
    """
    from minift.errors import MiniftError

    path = Path(path)
    if not path.is_file():
        raise MiniftError(f"{path}: no such {what} file")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise MiniftError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if skip_blank:
                continue
            raise MiniftError(f"{path}:{number}: empty line (every line must hold one JSON object)")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MiniftError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise MiniftError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        records.append((record, number))
    return records
