"""Every file the app writes goes through here: atomic, exclusive, never through a planted link.

Rules (docs/architecture.md):
- A temp file is created in the target's own folder with a random name, ``O_CREAT | O_EXCL |
  O_NOFOLLOW``: a file or link already at that name is never opened, so nothing planted in the
  folder can redirect the write. It is written, fsynced, then renamed into place.
- :func:`write_atomic` replaces a file: the new file keeps the old one's permission bits (a new one
  gets the umask's), and a symlink at the name is written through to its target, so the link stays
  a link. The user chose that name; the link is theirs.
- :func:`write_new` claims a name that must not exist yet: the finished temp file is hard-linked to
  the final name (``link`` fails if anything, even a dangling link, is there), so two writers never
  share a name and a reader never sees a partial file. Where a file system has no hard links, the
  name is reserved by an exclusive create and the temp renamed over it.
- Whatever stops a write (an error, Ctrl+C) removes its temp file. :func:`remove_temp_files` removes
  those still being written, for a process that must exit without unwinding its threads.
- Reads of files that must be regular (:func:`open_regular`) never block on a FIFO and say what the
  path is when it is not a file.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], None]
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
_TEMP_STEM_BYTES = 100  # leaves room for the random part within any file system's name limit
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def kind_of(mode: int) -> str:
    """What a path that is not a regular file is, for messages."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def name_limit(folder: str | os.PathLike) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def check_name(folder: str | os.PathLike, name: str) -> None:
    """Refuse a file name this folder's file system cannot hold (raises ValueError)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"{name!r} is not a file name")
    size, limit = len(os.fsencode(name)), name_limit(folder)
    if size > limit:
        raise ValueError(f"{Path(folder) / name}: the file name is {size} bytes, longer than "
                         f"the {limit}-byte limit of the file system")


def _temp_path(folder: Path, name: str) -> Path:
    stem = os.fsencode(name)[:_TEMP_STEM_BYTES].decode("utf-8", "ignore")
    return folder / f".{stem}.{secrets.token_hex(8)}.tmp"


def _write_temp(folder: Path, name: str, data: bytes | Writer, mode: int,
                exact_mode: bool) -> Path:
    """A new temp file in ``folder`` holding ``data``, fsynced, and registered as live."""
    for _ in range(100):
        tmp = _temp_path(folder, name)
        try:
            fd = os.open(tmp, _CREATE, mode)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free temp name", str(folder))
    with _LIVE_LOCK:
        _LIVE.add(str(tmp))
    try:
        if exact_mode:
            os.fchmod(fd, mode)  # the umask narrowed the create; the old file's bits win
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def _discard(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
    with _LIVE_LOCK:
        _LIVE.discard(str(tmp))


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | Writer) -> Path:
    """Replace ``path`` with ``data`` (bytes, or a function writing to a binary file) atomically;
    returns the file written (a symlink's target)."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    folder = path.parent
    check_name(folder, path.name)
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"cannot save over {kind_of(old.st_mode)}", str(path))
    mode = stat.S_IMODE(old.st_mode) & 0o777 if old is not None else 0o666
    tmp = _write_temp(folder, path.name, data, mode, exact_mode=old is not None)
    try:
        os.replace(tmp, path)
    finally:
        _discard(tmp)
    _sync_folder(folder)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, text.encode("utf-8"))


def write_new(path: str | os.PathLike, data: bytes | Writer) -> Path:
    """Write a file that must not exist yet; raises FileExistsError (nothing written) if the
    name is taken by anything, a link included."""
    path = Path(path)
    return write_unique(path.parent, [path.name], data)


def write_unique(folder: str | os.PathLike, names: Iterable[str], data: bytes | Writer) -> Path:
    """Write ``data`` once, under the first of ``names`` that nothing in ``folder`` holds yet,
    claimed atomically (another process claiming the same name gets the next); returns it."""
    folder = Path(folder)
    names = iter(names)
    first = next(names, None)
    if first is None:
        raise ValueError("no file name given")
    check_name(folder, first)
    tmp = _write_temp(folder, first, data, 0o666, exact_mode=False)
    try:
        name: str | None = first
        while name is not None:
            check_name(folder, name)
            path = folder / name
            try:
                _claim(tmp, path)
            except FileExistsError:
                name = next(names, None)
                continue
            _sync_folder(folder)
            return path
        raise FileExistsError(errno.EEXIST, "every candidate name is taken", str(folder / first))
    finally:
        _discard(tmp)


def _claim(tmp: Path, path: Path) -> None:
    """Give the finished ``tmp`` the name ``path`` only if nothing holds it (FileExistsError)."""
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:  # no hard links here (some network and FAT file systems)
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                             errno.ENOSYS):
            raise
        os.close(os.open(path, _CREATE, 0o666))  # the exclusive claim; then fill it
        os.replace(tmp, path)


def remove_temp_files() -> None:
    """Remove every temp file a write in this process has not finished (before ``os._exit``)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for name in live:
        _discard(Path(name))


def open_regular(path: str | os.PathLike, max_bytes: int | None = None) -> BinaryIO:
    """Open a regular file for reading; a directory, FIFO or device is refused at once (a FIFO
    is opened non-blocking, so it cannot hang), and so is a file over ``max_bytes``."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a file") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ValueError(f"{path}: is {kind_of(info.st_mode)}, not a file")
    if max_bytes is not None and info.st_size > max_bytes:
        os.close(fd)
        raise ValueError(f"{path}: the file is {info.st_size:,} bytes; the limit is {max_bytes:,}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def check_output_folder(path: str | os.PathLike) -> None:
    """Refuse a folder that cannot receive files (raises ValueError naming it): something not a
    folder at the path or above it, or a folder this process cannot write to."""
    path = Path(path).expanduser()
    probe = path
    while True:
        try:
            info = probe.stat()
            break
        except FileNotFoundError:
            if probe.parent == probe:
                raise ValueError(f"{path}: no such folder") from None
            probe = probe.parent
        except NotADirectoryError:
            probe = probe.parent
        except OSError as exc:
            raise ValueError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        where = "" if probe == path else f" ({probe} is {kind_of(info.st_mode)})"
        what = f"is {kind_of(info.st_mode)}" if probe == path else "is under a file"
        raise ValueError(f"{path}: {what}, not a folder{where}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: no permission to write in {probe}")


def replace_dir(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Swap a finished folder ``staging`` (made by ``tempfile.mkdtemp`` beside ``target``) in for
    ``target``; the folder gets the old one's mode, or the umask's instead of mkdtemp's 0700."""
    staging, target = Path(staging), Path(target)
    if target.is_dir() and not target.is_symlink():
        os.chmod(staging, stat.S_IMODE(target.stat().st_mode))
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old)  # renaming a folder over an empty folder is atomic
        os.replace(staging, target)
        shutil.rmtree(old)
    else:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        os.replace(staging, target)
    _sync_folder(target.parent)
