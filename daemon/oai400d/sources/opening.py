"""Opening a file to follow, with its reading starting where it should.

A path the globs or the watches found is opened as a new Tail, unless it is a file already
followed (a hard link, or a followed file's new name). A file saved before a restart is found
again by device, inode and first bytes, at its path or renamed in its directory. A path that
cannot be read is reported once and tried again at each reconcile; a saved file that cannot be
read now resumes where it stopped once it can.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence

from oai400d.errors import InputError
from oai400d.model import FileState
from oai400d.sources import globs
from oai400d.sources.followed import FollowedFiles, find_inode, holds, target
from oai400d.sources.tail import HEAD_BYTES, Tail, digest, find_line_end

# FollowedFiles.open_file: opens within the descriptors' budget, closing an idle file first.
Opener = Callable[[str], tuple[int, os.stat_result]]


class FileOpener:
    """Adds the files to follow to `followed`."""

    def __init__(
        self,
        followed: FollowedFiles,
        max_line: int,
        clock: Callable[[], float],
        report: Callable[[str], None],
        count_error: Callable[[str], None],
        matches: Callable[[str], bool],
        wrapper: str = "none",
        wrappers: Sequence[tuple[str, str]] = (),
        raw: bool = False,
    ) -> None:
        self._followed = followed
        self._max_line = max_line
        self._clock = clock
        self._report = report
        self._count_error = count_error  # told the path of each file that becomes unreadable
        self._matches = matches  # whether the globs match a path
        self._wrapper = wrapper
        self._wrappers = [(globs.normalize(pattern), kind) for pattern, kind in wrappers]
        self._raw = raw  # plain files' lines go out undecoded (Tail.raw)
        self._broken: dict[str, bool] = {}  # unreadable path → read it from its start once readable
        self._waiting: dict[str, FileState] = {}  # saved files that exist but cannot be read now

    def follow(self, path: str, from_start: bool) -> None:
        """Start following the file at `path` (from its start, or its last complete line)."""
        was_broken = path in self._broken
        if was_broken:
            from_start = self._broken[path]
        try:
            fd, info = self._followed.open_file(path)
        except FileNotFoundError:
            return  # gone again; an unreadable path stays reported until reconcile drops it
        except InputError as error:
            if not was_broken:
                self._report(str(error))
                self._count_error(path)
            self._broken[path] = from_start
            return
        if was_broken:
            del self._broken[path]
        followed = self._followed.same_file(info.st_dev, info.st_ino)
        if followed is not None:
            os.close(fd)
            if not followed.lost and holds(followed.path, followed):
                return  # a second name (hard link) of a file already followed
            self._followed.rename(followed, path)
            return
        tail = Tail(
            path,
            fd,
            info,
            os.pread(fd, min(info.st_size, HEAD_BYTES), 0),
            self._max_line,
            self._clock(),
            self._wrapper_for(path),
            self._raw,
        )
        tail.target = target(path)
        saved = self._waiting.pop(path, None)
        if saved is not None and _is_saved(fd, info, saved):
            tail.head, tail.head_len = saved.head, saved.head_len
            if info.st_size >= saved.offset:
                tail.seek(saved.offset, saved.line_no)
            where = f"line {saved.line_no + 1}, where it stopped"
        elif from_start:
            where = "its beginning"
        else:
            tail.seek(*find_line_end(fd, info.st_size))
            where = f"its end (line {tail.line_no + 1})"
        if was_broken:
            self._report(f"{path} can be read now; reading it from {where}")
        self._followed.add(tail)

    def resume(self, state: FileState) -> None:
        """Continue a file saved before a restart, wherever it is now in its directory."""
        if self._followed.same_file(state.dev, state.ino) is not None:
            self._followed.forget(state)  # an older duplicate of the same file
            return
        if _unreadable_there(state, self._followed.open_file):
            # Still there but unreadable: reported by follow, resumed when it can be read.
            self._waiting[state.path] = state
            return
        for path in (state.path, *_same_dir_candidates(state)):
            opened = _open_saved(path, state, self._followed.open_file)
            if opened is None:
                continue
            fd, info = opened
            tail = Tail(
                path,
                fd,
                info,
                b"",
                self._max_line,
                self._clock(),
                self._wrapper_for(path),
                self._raw,
            )
            tail.target = target(path)
            tail.head, tail.head_len = state.head, state.head_len
            if info.st_size >= state.offset:
                tail.seek(state.offset, state.line_no)
            # else: truncated while we were stopped, read it again from the start
            tail.rotated = not self._matches(path)
            if path != state.path:
                self._followed.forget(state)
            else:
                tail.emitted = state
            self._followed.add(tail)
            return
        self._followed.forget(state)
        self._report(
            f"{state.path}: the file read up to line {state.line_no} is gone (rotated away and "
            "compressed, or deleted, while oai400d was stopped); any lines written to it after "
            "the stop could not be read. The file now at that path is read from its beginning."
        )

    def retry_broken(self, wanted: Callable[[str], bool]) -> None:
        """Try the unreadable paths again; forget those no longer `wanted` (gone, unmatched)."""
        for path in list(self._broken):
            if wanted(path):
                self.follow(path, from_start=True)  # (from where it was to start, in fact)
            else:
                del self._broken[path]

    def forget_unmatched(self, matched: Collection[str]) -> None:
        """Stop retrying the unreadable paths the globs no longer match (or that are gone)."""
        for path in list(self._broken):
            if path not in matched:
                del self._broken[path]

    def _wrapper_for(self, path: str) -> str:
        return globs.choose(self._wrappers, self._wrapper, path)


def _same_dir_candidates(state: FileState) -> list[str]:
    found = find_inode(os.path.dirname(state.path), state.dev, state.ino)
    return [found] if found is not None and found != state.path else []


def _open_saved(
    path: str, state: FileState, open_file: Opener
) -> tuple[int, os.stat_result] | None:
    """Open `path` if it is the saved file: same device, inode and first bytes."""
    try:
        fd, info = open_file(path)
    except (OSError, InputError):
        return None
    if _is_saved(fd, info, state):
        return fd, info
    os.close(fd)
    return None


def _is_saved(fd: int, info: os.stat_result, state: FileState) -> bool:
    if (info.st_dev, info.st_ino) != (state.dev, state.ino):
        return False
    head = os.pread(fd, state.head_len, 0)
    return len(head) == state.head_len and digest(head) == state.head


def _unreadable_there(state: FileState, open_file: Opener) -> bool:
    """Whether the saved file is still at its path (same inode) but cannot be opened."""
    try:
        info = os.stat(state.path)
    except OSError:
        return False
    if (info.st_dev, info.st_ino) != (state.dev, state.ino):
        return False
    try:
        os.close(open_file(state.path)[0])
    except (OSError, InputError):
        return True
    return False
