"""Writing files so that an interrupted write never leaves a half file behind,
and saying what went wrong with a file in one line.

`atomic_write` is the one write-then-rename of the engine: every artefact
(databases, weights, checkpoints, BVH, JSON reports, images) goes through it.
The temporary file is named `.<name>.<pid>.<random>.tmp` beside the target; an
error or Ctrl-C removes it, and a writer that was killed outright (SIGKILL, a
power cut) leaves one behind that the next write of the same target removes
(its process is gone and it has not changed for QUIET_SECONDS, or it is a day
old).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shown_path(path) -> str:
    """A path as an artefact's metadata records it: relative to the checkout
    when inside it, so shipped files name no machine's folders."""
    p = os.path.abspath(path)
    return os.path.relpath(p, REPO_ROOT) if p.startswith(REPO_ROOT + os.sep) else p

STALE_SECONDS = 24 * 3600
QUIET_SECONDS = 5.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:            # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path) -> list[str]:
    """Remove temporary files of earlier writes of `path` whose writer is gone
    (or that are older than a day). Returns the removed paths."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "."
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):-len(".tmp")].split(".", 1)[0]
        full = os.path.join(folder, name)
        try:
            age = now - os.stat(full).st_mtime
            if pid.isdigit():      # untouched for a few seconds, its writer gone (a live writer's
                # file keeps changing: the age guards one in another pid namespace)
                stale = age > STALE_SECONDS or (age > QUIET_SECONDS and not _pid_alive(int(pid)))
            else:                  # a name without a pid (an older writer): an hour is plenty
                stale = age > 3600
            if stale:
                os.unlink(full)
                removed.append(full)
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file beside `path` for writing; on success it is given
    normal permissions (0666 less the umask) and renamed over `path`; on any
    error (or Ctrl-C) it is removed and `path` is left as it was. An OSError
    that does not name a file (a full disk during write()) is given `path`.

        with atomic_write("out/db.animdb") as f:
            f.write(data)
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    up = folder
    while up and not os.path.exists(up):
        up = os.path.dirname(up)
    if up and not os.path.isdir(up):
        raise NotADirectoryError(20, "Not a directory (a file is where a folder should be)", up)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = path
        raise


def write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path) as f:
        f.write(data)


def write_text(path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def describe_os_error(e: OSError) -> str:
    """One line naming the path and the problem: 'out/db.animdb: Read-only file system'."""
    if e.filename is not None and e.strerror:
        where = os.fspath(e.filename)
        if e.filename2 is not None:
            where += f" -> {os.fspath(e.filename2)}"
        return f"{where}: {e.strerror}"
    return str(e) or type(e).__name__


@contextlib.contextmanager
def interrupt_on_sigterm():
    """Within the block, SIGTERM (`kill PID`) raises KeyboardInterrupt in the
    main thread, so it unwinds like Ctrl-C: temporary files are removed, worker
    processes stopped. The previous handler is restored after. Outside the main
    thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ArtefactError(ValueError):
    """A saved artefact (weights, policy, checkpoint) that cannot be used: the
    message names the file and the problem."""


def read_npz(path, what: str = "weights file") -> dict:
    """Every array of an .npz archive, read in full, without pickles. The
    archive's own CRC-32 of each member is checked as it is read, so a
    truncated or bit-flipped file is an ArtefactError naming it (not a
    BadZipFile or EOFError traceback). A missing or unreadable file is the
    OSError that names it."""
    import zipfile
    import zlib

    import numpy as np

    path = os.fspath(path)
    with open(path, "rb") as fh:
        try:
            with np.load(fh, allow_pickle=False) as z:
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise ArtefactError(f"{path}: not a {what} (not an .npz archive)")
                return {k: z[k] for k in z.files}
        except ArtefactError:
            raise
        except AttributeError:          # np.load returned a plain array (.npy): no context manager
            raise ArtefactError(f"{path}: not a {what} (not an .npz archive)") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError, UnicodeDecodeError,
                NotImplementedError) as e:
            raise ArtefactError(f"{path}: damaged or not a {what} ({type(e).__name__}: {e})") from None


def truncate_jsonl(path, keep) -> int:
    """Rewrite a JSON-lines log keeping the records for which keep(record) is
    true, up to the first one that is not (and dropping a half-written last
    line). A training run resumed from a checkpoint calls it so that the log
    does not repeat the iterations done after that checkpoint. Returns the
    number of records kept; a missing file is left missing."""
    import json

    path = os.fspath(path)
    if not os.path.exists(path):
        return 0
    kept = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                break
            if not isinstance(rec, dict) or not keep(rec):
                break
            kept.append(line if line.endswith("\n") else line + "\n")
    write_text(path, "".join(kept))
    return len(kept)
