"""The smoke import's sandbox: the layer's code runs, so it runs where it can read none of the build's secrets,
reach no network, change nothing outside a directory of its own, and leave nothing running.

The kinds, strongest first (``auto`` takes the first that works here):

- ``bubblewrap`` (the ``bwrap`` program): new user, PID, network, IPC, UTS and mount namespaces. The sandbox sees
  the system's programs and libraries (``/usr`` and the ``/lib``, ``/bin`` links), a few harmless files of ``/etc``,
  the interpreter's own directories, the layer read-only at ``/opt`` (as Lambda mounts it), a private ``/tmp``, and
  one writable directory for the results; no home, no environment but a handful of variables, no network device
  but a loopback that is down. Its processes cannot see this one's; when the import's process ends, the kernel
  ends every process left in its PID namespace. Root runs it as a user id of its own (``setpriv``, every
  capability dropped).
- ``user`` (root only, without bubblewrap): a user id of its own, that no account uses, with no supplementary
  group, no capability and an empty environment. It cannot read this process's ``/proc`` entries (their environment
  included), root's files, or other users' private files; at the end every process of that user id is killed and
  whatever it left in the shared temporary directories removed. Where root may make a network namespace
  (``unshare --net``; not in a container without CAP_SYS_ADMIN), it runs in one with no device but a loopback that
  is down; elsewhere the network is not isolated (the description says which). It
  runs in a directory made for each run in the system's temporary directory, where it finds the layer (linked or
  copied there) and its own directory: the caller's directories (a build's 0700 staging directory, a private
  TMPDIR) may be ones it cannot enter.
- ``none``: the layer's code runs as this user, with an empty environment, in a session of its own that is killed
  at the end. Only when asked for by name: it isolates nothing.

See docs/explanation/smoke-import-sandbox.md for what each kind guarantees and what it does not.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cdk_pip_layer.engine.errors import InvalidInputError
from cdk_pip_layer.engine.options import SandboxKind
from cdk_pip_layer.engine.process import CompletedRun, run
from cdk_pip_layer.engine.scratch import make_scratch_dir, remove_stale

# Where the sandbox sees the layer (Lambda's own place for it) and the directory it may write.
LAYER_MOUNT = "/opt"
WORK_MOUNT = "/smoke"
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# What of /etc the sandbox sees: the dynamic loader's cache, time zone, user names, certificates; not pip.conf,
# not anything a user may have put there for a build.
_ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "ssl",
    "pki",
    "ca-certificates",
    "alternatives",
    "mime.types",
)
_SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# The user ids of the sandbox: 0x70000000 + this process's id * _SLOTS + a slot (one per import running at once).
# No account has such an id, and the owner of a leftover process can be told from it (see _sweep).
_UID_BASE = 0x7000_0000
_SLOTS = 64
_PID_LIMIT = 1 << 22  # Linux's largest pid_max
_WHERE = (
    "import json, os, sys, sysconfig; print(json.dumps([os.path.realpath(sys.executable), sysconfig.get_path('stdlib'),"
    " sys.base_prefix, sys.base_exec_prefix, sys.prefix]))"
)
_KILL_ALL = "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
PROBE_TIMEOUT = 60.0
# The scratch directories of the trial run: cdk-pip-layer-sandbox-<owner>-<random> in the temporary directory.
PROBE_PREFIX = "cdk-pip-layer-sandbox-"
# The directory of one run of the user kind: cdk-pip-layer-import-<owner>-<random> in the system's temporary
# directory.
PLACE_PREFIX = "cdk-pip-layer-import-"
# What is brought back of a file the import wrote, at most (the smoke import reads no more of its results).
RESULTS_LIMIT = 16 * 1024 * 1024
# Where the user kind may make its directories: the first of these that is safe (see _temp_root).
_TEMP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm")


@dataclass(frozen=True)
class _Python:
    """An interpreter as the sandbox needs to know it: its real file and the directories it reads."""

    executable: str
    directories: tuple[str, ...]
    stdlib: str = ""  # its standard library's directory, as it names it


@dataclass(frozen=True)
class Seen:
    """Where the interpreter in the sandbox sees the layer and the one directory it may write."""

    layer: str
    work: str


# The interpreter's arguments, given where it sees the layer and its directory.
Arguments = Callable[[Seen], Sequence[str]]


class Sandbox:
    """One way of running the import's interpreter; :meth:`run` runs it for one layer."""

    kind: SandboxKind
    description: str

    def __init__(self, python: _Python) -> None:
        self.python = python

    def reaches(self, layer: Path) -> bool:
        """Whether the sandbox can read the directory ``layer`` where it is (else give it a copy it can)."""
        return True

    def view(self, layer: Path, work: Path) -> Seen | None:
        """Where every run sees ``layer`` and ``work``, with what the caller put in ``work`` before it; None when
        each run sees them somewhere of its own (what is laid out in advance for those paths cannot be used)."""
        return Seen(str(layer), str(work))

    def run(
        self,
        args: Arguments,
        *,
        layer: Path,
        work: Path,
        output: Path,
        timeout: float,
        results: Sequence[str] = (),
    ) -> CompletedRun:
        """Run the interpreter with ``args(seen)``, its output into the new file ``output`` (outside ``work``);
        nothing it started is left running. ``work`` is the directory it may write; ``results`` name the files it
        writes there that the caller reads afterwards (a sandbox that gives it a directory of its own brings them
        back into ``work``)."""
        raise NotImplementedError

    def environment(self, layer: str, work: str) -> dict[str, str]:
        """The whole environment of the import: nothing of this process's."""
        return {
            "PATH": SAFE_PATH,
            "LANG": "C.UTF-8",
            "HOME": work,
            "TMPDIR": work,
            "LD_LIBRARY_PATH": f"{layer}/lib",
            "AWS_EC2_METADATA_DISABLED": "true",
        }


class _Unconfined(Sandbox):
    kind = SandboxKind.NONE

    def __init__(self, python: _Python) -> None:
        super().__init__(python)
        self.description = f"{python.executable} with no sandbox (as asked: the layer's code ran as this user)"

    def run(
        self,
        args: Arguments,
        *,
        layer: Path,
        work: Path,
        output: Path,
        timeout: float,
        results: Sequence[str] = (),
    ) -> CompletedRun:
        env = self.environment(str(layer), str(work))
        argv = [self.python.executable, *args(Seen(str(layer), str(work)))]
        done = run(argv, cwd=work, env=env, inherit_env=False, timeout=timeout, output_file=output)
        with contextlib.suppress(OSError):  # what it started and left in its session
            os.killpg(_group_of(done), signal.SIGKILL)
        return done


def _group_of(done: CompletedRun) -> int:
    return done.pid if done.pid > 0 else -1


class _OwnUser(Sandbox):
    """Root's fallback: a user id of its own, in a network namespace of its own where root may make one (see the
    module's documentation)."""

    kind = SandboxKind.USER

    def __init__(self, python: _Python, isolate_network: tuple[str, str] | None = None) -> None:
        super().__init__(python)
        self.isolate_network = isolate_network  # unshare and setpriv, when a network namespace can be made here
        network = "no network" if isolate_network else "no network isolation"
        self.description = f"{python.executable} as a user id of its own ({network})"

    def command(self, argv: list[str], uid: int) -> tuple[list[str], int | None]:
        """``argv`` and the user it is started as: in a new network namespace (made as root, by ``unshare``)
        where it can be, then as ``uid`` with every capability dropped (``setpriv``); else started as ``uid``."""
        if self.isolate_network is None:
            return argv, uid
        unshare, setpriv = self.isolate_network
        drop = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
        # The change of user clears the parent-death signal the process helper set: setpriv sets it again.
        return [unshare, "--net", "--", setpriv, *drop, "--no-new-privs", "--pdeathsig=KILL", "--", *argv], None

    def reaches(self, layer: Path) -> bool:
        return True  # every run gets a copy of the layer in a directory it can reach

    def view(self, layer: Path, work: Path) -> Seen | None:
        return None  # a new place for every run, and only the results are carried out of it

    def run(
        self,
        args: Arguments,
        *,
        layer: Path,
        work: Path,
        output: Path,
        timeout: float,
        results: Sequence[str] = (),
    ) -> CompletedRun:
        with sandbox_user() as uid, _place_for(uid) as place:
            seen = Seen(str(place / "layer"), str(place / "work"))
            argv = [self.python.executable, *args(seen)]
            try:
                _stage_layer(layer, Path(seen.layer))
            except OSError as exc:  # a full disk, say: the import cannot run, and the caller says so
                why = f"the layer could not be put where the sandbox's user can read it ({exc.strerror or exc})"
                return CompletedRun(tuple(argv), 1, f"{why}: {exc.filename or place}")
            command, user = self.command(argv, uid)
            try:
                done = run(
                    command,
                    cwd=Path(seen.work),
                    env=self.environment(seen.layer, seen.work),
                    inherit_env=False,
                    user=user,
                    timeout=timeout,
                    output_file=output,
                )
            finally:
                self.end(uid)
            for name in results:
                _bring_back(Path(seen.work, name), work / name)
            return done

    def end(self, uid: int) -> None:
        """Kill every process of ``uid`` (at once: kill(-1) from that user is atomic against fork), and remove what
        it left in the shared temporary directories."""
        run([self.python.executable, "-I", "-S", "-c", _KILL_ALL], env={"PATH": SAFE_PATH}, inherit_env=False, user=uid)
        _remove_owned_by(uid)


class _Bubblewrap(Sandbox):
    kind = SandboxKind.BUBBLEWRAP

    def __init__(self, python: _Python, bwrap: str, setpriv: str | None, *, disable_userns: bool) -> None:
        super().__init__(python)
        self.bwrap = bwrap
        self.setpriv = setpriv  # root: the sandbox's own user id is taken through it
        self.disable_userns = disable_userns
        who = "as a user id of its own" if setpriv else "as this user"
        self.description = f"{python.executable} in bubblewrap ({who}; no network, no host processes, /opt read-only)"

    def reaches(self, layer: Path) -> bool:
        return self.setpriv is None or _others_read(layer)

    def view(self, layer: Path, work: Path) -> Seen | None:
        return Seen(LAYER_MOUNT, WORK_MOUNT)

    def argv(self, args: Arguments, *, layer: Path, work: Path, uid: int | None) -> list[str]:
        """The bwrap command line: the namespaces, the filesystem it sees, its environment, the command."""
        argv = [self.bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if uid is None:
            argv += ["--unshare-user", *(["--disable-userns"] if self.disable_userns else [])]
        argv += ["--die-with-parent", "--new-session", "--clearenv", "--proc", "/proc", "--dev", "/dev"]
        argv += ["--perms", "1777", "--tmpfs", "/tmp", "--chdir", "/tmp"]
        argv += _system_mounts()
        made: set[str] = {"/"}
        for directory in self.python.directories:
            if not directory.startswith("/usr/"):
                argv += _parents(directory, made)
                argv += ["--ro-bind", directory, directory]
        argv += ["--ro-bind", str(layer), LAYER_MOUNT, "--bind", str(work), WORK_MOUNT]
        for key, value in self.environment(LAYER_MOUNT, "/tmp").items():
            argv += ["--setenv", key, value]
        if uid is not None and self.setpriv is not None:
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", self.setpriv]
            argv += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
            argv += ["--no-new-privs", "--"]
        return [*argv, self.python.executable, *args(Seen(LAYER_MOUNT, WORK_MOUNT))]

    def run(
        self,
        args: Arguments,
        *,
        layer: Path,
        work: Path,
        output: Path,
        timeout: float,
        results: Sequence[str] = (),
    ) -> CompletedRun:
        with sandbox_user() if self.setpriv else contextlib.nullcontext() as uid:
            if uid is not None:
                os.chown(work, uid, uid)
            argv = self.argv(args, layer=layer, work=work, uid=uid)
            # bwrap itself gets no secret either: its /proc entries are this user's to read.
            return run(argv, env={"PATH": SAFE_PATH}, inherit_env=False, timeout=timeout, output_file=output)


def _system_mounts() -> list[str]:
    """The system's programs and libraries, read-only (merged-/usr links as links), and the harmless part of
    /etc."""
    argv: list[str] = []
    for name in _SYSTEM:
        path = Path("/", name)
        if path.is_symlink():
            argv += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    for name in _ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return argv


def _parents(directory: str, made: set[str]) -> list[str]:
    """bwrap arguments creating the directories above ``directory`` searchable by every user (bwrap would copy the
    modes of the host's, and a home directory's 0700 would hide a pyenv interpreter from the sandbox's user)."""
    argv: list[str] = []
    parts = Path(directory).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        parent = "/" + "/".join(parts[:depth])
        if parent not in made:
            made.add(parent)
            argv += ["--perms", "0755", "--dir", parent]
    return argv


def _others_read(directory: Path) -> bool:
    """Whether a user of no group may list and enter ``directory`` (bubblewrap binds it: the way to it does not
    matter)."""
    try:
        mode = directory.stat().st_mode
    except OSError:
        return False
    return mode & (stat.S_IROTH | stat.S_IXOTH) == stat.S_IROTH | stat.S_IXOTH


# --- the user kind's directory of its own -----------------------------------------------------------------------------


@contextlib.contextmanager
def _place_for(uid: int) -> Iterator[Path]:
    """A new directory for one run as ``uid`` in the system's temporary directory (root's, 0711: ``uid`` gets through
    to what is made for it, and can list or change nothing of it): ``work`` in it is ``uid``'s own. Removed
    afterwards; those of killed verifications are removed first."""
    root = _temp_root()
    remove_stale(root, PLACE_PREFIX)
    place = make_scratch_dir(root, PLACE_PREFIX)
    try:
        place.chmod(0o711)
        work = place / "work"
        work.mkdir(mode=0o700)
        os.chown(work, uid, uid, follow_symlinks=False)
        work.chmod(0o711)  # the import's results stay readable by name, for a root without CAP_DAC_OVERRIDE
        yield place
    finally:
        shutil.rmtree(place, ignore_errors=True)


def _temp_root() -> Path:
    """The first temporary directory (``TMPDIR``'s, else the system's) that another user can get through and that
    no other user can change a directory in: every directory on the way searchable by all, root's (or this
    user's), and writable by others only when sticky (as ``/tmp`` is). Raises OSError when there is none."""
    tried = []
    for candidate in dict.fromkeys((tempfile.gettempdir(), *_TEMP_ROOTS)):
        path = Path(os.path.realpath(candidate))
        if all(_safe_to_pass(step) for step in (path, *path.parents)):
            return path
        tried.append(candidate)
    raise OSError(errno.EACCES, f"no temporary directory that every user can reach safely ({', '.join(tried)})")


def _safe_to_pass(directory: Path) -> bool:
    try:
        info = os.lstat(directory)  # a resolved path: a link here has just been put there
    except OSError:
        return False
    mode = info.st_mode
    sticky_or_closed = not mode & (stat.S_IWGRP | stat.S_IWOTH) or bool(mode & stat.S_ISVTX)
    owner = info.st_uid in (0, os.geteuid())
    return stat.S_ISDIR(mode) and bool(mode & stat.S_IXOTH) and owner and sticky_or_closed


_OPEN_SOURCE = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _stage_layer(layer: Path, dest: Path) -> None:
    """The layer in the new directory ``dest``, as Lambda lays it out: directories 0755, files 0644 (0755 when any
    execute bit is set), root's; a file that is so already is linked where the file system allows, else copied;
    links stay links; nothing is followed, and what is neither file, directory nor link is left out."""
    dest.mkdir(mode=0o755)
    dest.chmod(0o755)
    for top, directories, files in os.walk(layer):  # a link to a directory is listed, never entered
        here = dest / Path(top).relative_to(layer)
        for name in (*directories, *files):
            source, target = Path(top, name), here / name
            info = os.lstat(source)
            if stat.S_ISLNK(info.st_mode):
                target.symlink_to(source.readlink())
            elif stat.S_ISDIR(info.st_mode):
                target.mkdir(mode=0o755)
                target.chmod(0o755)
            elif stat.S_ISREG(info.st_mode):
                _stage_file(source, target, 0o755 if info.st_mode & 0o111 else 0o644)


def _stage_file(source: Path, target: Path, mode: int) -> None:
    with contextlib.suppress(OSError):
        if stat.S_IMODE(os.lstat(source).st_mode) == mode:
            os.link(source, target, follow_symlinks=False)
            return
    fd = os.open(source, _OPEN_SOURCE)
    with os.fdopen(fd, "rb") as reader:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        with os.fdopen(os.open(target, _CREATE, 0o600), "wb") as writer:
            shutil.copyfileobj(reader, writer)
            os.fchmod(writer.fileno(), mode)


def _bring_back(written: Path, dest: Path) -> None:
    """The first :data:`RESULTS_LIMIT` bytes of the file the import wrote at ``written`` into the new file ``dest``,
    when it is a regular file (never read through a link, nor from a FIFO)."""
    try:
        fd = os.open(written, _OPEN_SOURCE)
    except OSError:
        return
    with os.fdopen(fd, "rb") as reader:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        with os.fdopen(os.open(dest, _CREATE, 0o644), "wb") as writer:
            writer.write(reader.read(RESULTS_LIMIT))


# --- the sandbox's own user ids ------------------------------------------------------------------------------------

_TAKEN: set[int] = set()
_TAKING = threading.Lock()


@contextlib.contextmanager
def sandbox_user() -> Iterator[int]:
    """A user id for one sandbox, unique while it runs: no account has it and no other import uses it. What dead
    imports left running under ids of this kind is killed first."""
    _sweep()
    with _TAKING:
        slot = next((s for s in range(_SLOTS) if s not in _TAKEN), None)
        if slot is None:
            raise InvalidInputError(
                f"More than {_SLOTS} smoke imports at once in one process",
                subject="import sandbox",
                hint="verify fewer layers at once.",
            )
        _TAKEN.add(slot)
    try:
        yield _UID_BASE + os.getpid() * _SLOTS + slot
    finally:
        with _TAKING:
            _TAKEN.discard(slot)


def _sweep() -> None:
    """Kill the processes that run as a sandbox user id whose owner (the process its id names) has ended: a
    verification killed by SIGKILL could not end them itself. Only those of this process's pid namespace: a
    container's user ids name pids of the container, which are not this namespace's."""
    for pid, uid in _processes():
        if _UID_BASE <= uid < _UID_BASE + _PID_LIMIT * _SLOTS:
            owner = (uid - _UID_BASE) // _SLOTS
            if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def _processes() -> Iterator[tuple[int, int]]:
    """(pid, real uid) of every process this one can see in its own pid namespace (a host sees the processes of
    its containers too: they are in namespaces below its own)."""
    own = _status(Path("/proc/self"))
    depth = own[1] if own is not None else 1
    try:
        entries = [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return
    for entry in entries:
        found = _status(entry)
        if found is not None and found[1] == depth:
            yield int(entry.name), found[0]


def _status(entry: Path) -> tuple[int, int] | None:
    """(real uid, how deep its pid namespace is: the number of pids its NSpid line gives; 1 without one) of the
    process whose /proc directory is ``entry``."""
    uid, depth = None, 1
    try:
        with (entry / "status").open(encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
                elif line.startswith("NSpid:"):
                    depth = len(line.split()) - 1
    except (OSError, ValueError, IndexError):
        return None
    return None if uid is None else (uid, depth)


def _remove_owned_by(uid: int) -> None:
    """Remove what ``uid`` left at the top of the shared temporary directories (never following a link)."""
    for shared in {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}:
        try:
            entries = list(os.scandir(shared))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink()
            except OSError:
                continue


# --- choosing one ----------------------------------------------------------------------------------------------------


def _interpreter(python: str) -> _Python | str:
    """What the sandbox must show of ``python``, asked of it (it runs no code of the layer), or why not."""
    done = run([python, "-I", "-S", "-c", _WHERE], env={"PATH": SAFE_PATH}, inherit_env=False, timeout=PROBE_TIMEOUT)
    try:
        executable, stdlib, *prefixes = json.loads(done.output.strip().splitlines()[-1])
    except (ValueError, IndexError, TypeError):
        return f"{python} does not run ({' '.join(done.tail(2))})"
    directories = {os.path.realpath(p) for p in prefixes if p} | {str(Path(executable).parent)}
    # A directory inside another is bound with it.
    kept = sorted(d for d in directories if not any(d != o and d.startswith(o.rstrip("/") + "/") for o in directories))
    return _Python(executable, tuple(kept), str(stdlib or ""))


def _bubblewrap(python: _Python) -> Sandbox | str:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    setpriv = None
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            return "bubblewrap as root needs setpriv (util-linux) to run the import as a user of its own"
        setpriv = os.path.realpath(setpriv)
    version = run([bwrap, "--version"], env={"PATH": SAFE_PATH}, inherit_env=False, timeout=PROBE_TIMEOUT)
    return _Bubblewrap(python, bwrap, setpriv, disable_userns=_at_least(version.output, (0, 8)))


def _at_least(version_output: str, wanted: tuple[int, int]) -> bool:
    try:
        numbers = version_output.rsplit(maxsplit=1)[-1].split(".")
        return (int(numbers[0]), int(numbers[1])) >= wanted
    except (IndexError, ValueError):
        return False


def _own_user(python: _Python) -> Sandbox | str:
    if os.name != "posix" or os.geteuid() != 0:
        return "a user id of its own needs root"
    return _OwnUser(python, _network_namespace())


def _network_namespace() -> tuple[str, str] | None:
    """``unshare`` and ``setpriv`` (util-linux) when root may make a network namespace here (not in a container
    without CAP_SYS_ADMIN, say); None otherwise."""
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare is None or setpriv is None:
        return None
    unshare, setpriv = os.path.realpath(unshare), os.path.realpath(setpriv)
    # setpriv's --pdeathsig came with util-linux 2.33: an older one runs the import without the namespace.
    argv = [unshare, "--net", "--", setpriv, "--no-new-privs", "--pdeathsig=KILL", "--", setpriv, "--dump"]
    probe = run(argv, env={"PATH": SAFE_PATH}, inherit_env=False, timeout=PROBE_TIMEOUT)
    return (unshare, setpriv) if probe.ok else None


_KINDS = {
    SandboxKind.AUTO: (_bubblewrap, _own_user),
    SandboxKind.BUBBLEWRAP: (_bubblewrap,),
    SandboxKind.USER: (_own_user,),
    SandboxKind.NONE: (_Unconfined,),
}


def choose_sandbox(kind: SandboxKind | str, python: str) -> Sandbox | str:
    """The sandbox of ``kind`` for the interpreter ``python`` (``auto``: the strongest that works here), tried
    once with the interpreter; or why there is none."""
    found = _interpreter(python)
    if isinstance(found, str):
        return found
    reasons = []
    for make in _KINDS[SandboxKind.parse(kind)]:
        made = make(found)
        if isinstance(made, str):
            reasons.append(made)
            continue
        failed = _try(made)
        if failed is None:
            return made
        reasons.append(failed)
    return "; ".join(reasons)


def _try(sandbox: Sandbox) -> str | None:
    """Why ``sandbox`` cannot run the interpreter here (e.g. user namespaces turned off), or None."""
    parent = Path(tempfile.gettempdir())
    remove_stale(parent, PROBE_PREFIX)
    root = make_scratch_dir(parent, PROBE_PREFIX)
    try:
        root.chmod(0o711)
        layer, work = root / "layer", root / "work"
        layer.mkdir(mode=0o755)
        work.mkdir()
        layer.chmod(0o755)
        check = "import os, sys; os.listdir(sys.argv[1]); open(os.path.join(sys.argv[2], 'ok'), 'w').close()"

        def args(seen: Seen) -> list[str]:
            return ["-I", "-S", "-c", check, seen.layer, seen.work]

        try:
            done = sandbox.run(
                args, layer=layer, work=work, output=root / "output", timeout=PROBE_TIMEOUT, results=("ok",)
            )
        except OSError as exc:  # e.g. an interpreter the sandbox's user may not run, no directory it can reach
            return f"{sandbox.kind.value} cannot run {sandbox.python.executable} ({exc.strerror or exc})"
        if done.ok and (work / "ok").is_file():
            return None
        return f"{sandbox.kind.value} does not run here ({' '.join(done.tail(2)) or f'exit {done.returncode}'})"
    finally:
        shutil.rmtree(root, ignore_errors=True)
