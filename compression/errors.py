"""UserError: the one base class of every mistake in what the user asked for (compression and profiling share it)."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user asked for; the UI and the CLI show its message, never a traceback.

    It lives in ``compression`` (the lowest layer) so that compression's and profiling's error classes can both
    derive from it with imports pointing downward only. It stays a ValueError so existing ``except ValueError``
    handlers keep working."""


class DiskWriteError(UserError):
    """Writing a file failed because of the disk, not the input: full, read-only or not permitted. The message says
    which, what was being written and where (the writer has removed what it had half written)."""


def _oserror_in(exc: BaseException) -> OSError | None:
    """The OSError that caused ``exc`` (itself, or one in its __cause__/__context__ chain), if any."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def write_failure(exc: BaseException, what: str, folder: object) -> DiskWriteError | None:
    """A DiskWriteError naming the cause when ``exc`` (raised while writing ``what`` in ``folder``) is a full disk,
    a read-only file system or a permission refusal; None for anything else. Libraries that write in native code
    (safetensors, torch, onnx) raise their own types with the OS's text, which is recognised too."""
    import errno

    os_error = _oserror_in(exc)
    code = os_error.errno if os_error is not None else None
    text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None).lower()
    if code in (errno.ENOSPC, errno.EDQUOT) or "no space left on device" in text or "os error 28" in text:
        return DiskWriteError(f"disk full: no space left while writing {what} in {folder}; free some space there "
                              "(or point COMPRESSION_DATA_DIR at a larger disk) and try again")
    if code == errno.EROFS or "read-only file system" in text or "os error 30" in text:
        return DiskWriteError(f"read-only: cannot write {what} in {folder} (the file system is mounted read-only); "
                              "point COMPRESSION_DATA_DIR at a writable folder")
    if code in (errno.EACCES, errno.EPERM) or "permission denied" in text:
        return DiskWriteError(f"permission denied: cannot write {what} in {folder}; make the folder writable for "
                              "this user or point COMPRESSION_DATA_DIR elsewhere")
    return None
