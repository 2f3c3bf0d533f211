"""Files and folders the scripts keep: private folders, no links followed, exclusive locks."""

import os
import stat

from nxlog_s3.common.optional import fcntl
from nxlog_s3.common.runtime import SCRIPT
from nxlog_s3.common.settings import ConfigError


def private_directory(directory, setting, log, own=False, make=True):
    """Makes DIRECTORY (its owner's only) if need be; refuses one this process cannot use,
    or one every user may write to (anyone could plant or swap the files it holds). OWN: a
    folder of the script's alone (SPOOL_DIR), made its owner's only if it was not. MAKE=False
    (a check) makes nothing: a missing folder must be one this process could make. Returns
    whether the folder exists."""
    where = "%s (%s)" % (os.path.abspath(directory), setting)
    if not make and not os.path.isdir(directory):
        parent = os.path.dirname(os.path.abspath(directory))
        while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError("%s: cannot make the folder %s: %s is not writable by this "
                              "process (the user NXLog runs as)" % (SCRIPT, where, parent))
        return False
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        mode = os.stat(directory).st_mode
    except OSError as exc:
        raise ConfigError("%s: cannot use the folder %s: %s" % (SCRIPT, where, exc)) from None
    if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError("%s: the folder %s is not readable and writable by this process "
                          "(the user NXLog runs as)" % (SCRIPT, where))
    if mode & stat.S_IWOTH:
        raise ConfigError("%s: every user may write to the folder %s: chmod o-w it, or choose "
                          "another" % (SCRIPT, where))
    if own and mode & 0o077:
        try:
            os.chmod(directory, 0o700)
        except OSError as exc:
            log.warning("cannot make the folder %s its owner's only: %s" % (where, exc))
    return True


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # Windows has no such flag (nor such links)
FILE_FLAGS = {"rb": os.O_RDONLY, "r+b": os.O_RDWR}


def open_nofollow(path, mode="rb"):
    """open(PATH, MODE) that refuses a symbolic link at PATH (OSError ELOOP): a link planted
    where a script keeps its files cannot make it read or write another file."""
    return os.fdopen(os.open(path, FILE_FLAGS[mode] | NOFOLLOW), mode)


def exclusive_lock(path):
    """A descriptor that holds an exclusive lock on PATH (made readable by its owner only, a
    link there refused), or None while another process or instance holds it. Windows has no
    such locks."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
    return fd


def hold_lock(path):
    """exclusive_lock(PATH) for the life of this process, which it names in the file once
    taken (this script, its pid) so that one refused can say who holds it: lock_holder."""
    fd = exclusive_lock(path)
    if fd is not None:
        os.ftruncate(fd, 0)
        os.write(fd, ("%s pid %d\n" % (SCRIPT, os.getpid())).encode())
    return fd


def _holder(path):
    """(script, pid) as hold_lock wrote them in the lock PATH; None where it cannot tell."""
    try:
        with open_nofollow(path) as handle:
            words = handle.read(200).decode("utf-8", "replace").split()
    except OSError:
        return None
    if len(words) != 3 or words[1] != "pid" or not words[2].isdigit():
        return None
    return words[0], int(words[2])


def lock_holder(path):
    """Who holds the lock PATH, as hold_lock named it: 's3_write_web in this NXLog' or
    's3_write (pid 4242)'; 'another process' where it cannot tell."""
    holder = _holder(path)
    if holder is None:
        return "another process"
    return "%s in this NXLog" % holder[0] if holder[1] == os.getpid() else "%s (pid %d)" % holder


def held_in_this_process(path):
    """Whether the lock PATH is held by another instance of this process (this NXLog)."""
    holder = _holder(path)
    return holder is not None and holder[1] == os.getpid()


def lock_held(path):
    """Whether another process holds the lock PATH now: taken and let go at once, and no
    file made where there is none (nobody holds it then)."""
    if not os.path.exists(path):
        return False
    fd = exclusive_lock(path)
    if fd is not None:
        os.close(fd)
    return fd is None
