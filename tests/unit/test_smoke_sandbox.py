"""The smoke import runs a layer's code: a hostile layer, built here, tries to read the build's credentials from its
parent's /proc entries, reach the network, write outside its sandbox and leave a daemon behind. Each attempt must
fail, whoever runs the verification (root, or a user without privileges), in each sandbox this host offers."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdk_pip_layer.engine.verify.sandbox import _processes as sweep_candidates
from hostile_layer import Attack, survivors

HOST_RUNTIME = "python{}.{}".format(*sys.version_info[:2])
IS_ROOT = os.name == "posix" and os.geteuid() == 0
BWRAP = shutil.which("bwrap")
SYSTEM_PYTHON = "/usr/bin/python{}.{}".format(*sys.version_info[:2])
needs_x86_64_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
    reason="the smoke import runs an interpreter of the target: an x86_64 Linux host is needed",
)
needs_root = pytest.mark.skipif(not IS_ROOT, reason="switching to another user needs root")
needs_bwrap = pytest.mark.skipif(BWRAP is None, reason="bubblewrap (bwrap) is not installed (scripts/setup.sh does)")


@pytest.fixture
def attack(tmp_path: Path) -> Iterator[Attack]:
    made = Attack(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


RUN_VERIFY = """
import json, sys
from cdk_pip_layer import verify_layer_zip
zip_path, runtime, python, sandbox = sys.argv[1:5]
result = verify_layer_zip(zip_path, runtime, smoke_import="auto", python=python, import_sandbox=sandbox)
print(json.dumps({"ran": result.import_ran, "summary": result.summary(), "report": result.report.to_json(),
                  "skipped": result.report.skipped, "ok": result.ok,
                  "errors": [f.subject for f in result.errors],
                  "warnings": [[f.check, f.problem] for f in result.warnings]}))
"""


def verify(
    attack: Attack,
    sandbox: str = "auto",
    *,
    python: str = sys.executable,
    import_python: str | None = None,
    **run: object,
) -> dict[str, Any]:
    """Verify the hostile layer in a process of ``python`` started with the build's secrets in its environment, as
    the command line is (``/proc/<pid>/environ`` shows what a process was started with); the import runs in
    ``import_python`` (default: ``python``). ``run``: more for subprocess.run."""
    env = {**os.environ, **attack.secrets, **run.pop("env", {})}  # type: ignore[dict-item]
    argv = [python, "-c", RUN_VERIFY, str(run.pop("zip_path", attack.zip)), HOST_RUNTIME, import_python or python]
    done = subprocess.run(
        [*argv, sandbox],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **run,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return answer


@needs_x86_64_linux
@needs_bwrap
def test_bubblewrap_contains_a_hostile_layer(attack: Attack) -> None:
    answer = verify(attack, "bubblewrap")
    assert "bubblewrap" in str(answer["ran"])
    found = attack.assert_contained(answer)
    assert found["daemon"] == "forked"  # it got as far as forking: the sandbox ended it


@needs_x86_64_linux
def test_the_default_sandbox_contains_a_hostile_layer(attack: Attack) -> None:
    """What every build runs: the strongest sandbox this host offers (bubblewrap here; a user of its own for root
    without it)."""
    answer = verify(attack)
    if answer["ran"] is None:  # no sandbox here: skipped, and said so
        assert "sandbox" in answer["skipped"]["import"] and [w[0] for w in answer["warnings"]] == ["import"]
        return
    attack.assert_contained(answer, network="bubblewrap" in answer["ran"])


def network_namespace_possible() -> bool:
    """Whether root may make a network namespace here (not in a container without CAP_SYS_ADMIN, say)."""
    unshare = shutil.which("unshare")
    return unshare is not None and subprocess.run([unshare, "--net", "true"], check=False).returncode == 0


@needs_x86_64_linux
@needs_root
def test_a_user_of_its_own_contains_a_hostile_layer_and_its_network(attack: Attack) -> None:
    """Root without bubblewrap: the import runs as a user id of its own (it cannot read this process's /proc
    entries, nor root's files), with a private TMPDIR, in a network namespace of its own where root may make one,
    and everything that user runs is killed at the end. The interpreter must be one every user may run (not a
    pyenv in /root)."""
    if not network_namespace_possible():
        pytest.skip("root may not make a network namespace here")
    answer = verify(attack, "user", import_python=system_python())
    assert "user id of its own (no network)" in str(answer["ran"])
    found = attack.assert_contained(answer, network=True)
    assert found["daemon"] == "forked"


@needs_x86_64_linux
@needs_root
def test_root_without_bubblewrap_falls_back_to_a_user_of_its_own(attack: Attack) -> None:
    """Without bubblewrap nor util-linux's unshare (a PATH that has none): a user id of its own, and the report says
    the network was not isolated."""
    answer = verify(attack, env={"PATH": "/nonexistent"}, import_python=system_python())
    assert "user id of its own (no network isolation)" in str(answer["ran"])
    attack.assert_contained(answer, network=False)


@needs_x86_64_linux
@needs_root
def test_a_user_of_its_own_imports_and_contains_a_layer_under_directories_it_cannot_enter(
    attack: Attack, tmp_path: Path
) -> None:
    """Root in a container without bubblewrap, a common CI runner: the verification's directories (a private
    TMPDIR here; pytest's or a build's 0700 directories) are none the sandbox's user can enter. The import runs
    all the same, from a directory of its own, and contains the layer as well."""
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    answer = verify(attack, "user", import_python=system_python(), env={"TMPDIR": str(private)})
    assert "user id of its own" in str(answer["ran"]), answer["skipped"]
    found = attack.assert_contained(answer, network=False)
    assert found["daemon"] == "forked"


@needs_root
def test_a_sandbox_user_in_another_pid_namespace_is_left_alone() -> None:
    """A verification in a container runs its import as a user id made of its pid in the container. A verification
    on the host sees that process too, but not its owner (another pid namespace): it must not take it for the
    leftover of a killed verification and kill it. What the sweep looks at is checked, not whether the process
    survives: on a shared machine a verification of an older version may kill it meanwhile."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text(encoding="ascii"))
    owner = next(pid for pid in range(pid_max - 1, 1, -1) if not Path(f"/proc/{pid}").exists())
    uid = 0x7000_0000 + owner * 64
    sleeper = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sleep", "60"]
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", *sleeper], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not (held := _processes_of(uid)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        swept = {pid for pid, _ in sweep_candidates()}  # what a verification starting here may end
    finally:
        proc.kill()
        _, why = proc.communicate()
    if not held:
        pytest.skip(f"no process in a new pid namespace here: {why.decode(errors='replace').strip()}")
    assert not swept & set(held), "a process of another pid namespace would be taken for a killed one's leftover"


def _processes_of(uid: int) -> list[int]:
    """The live processes (not zombies) of ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text(encoding="ascii") if entry.name.isdigit() else ""
        except OSError:
            continue
        if f"\nUid:\t{uid}\t" in status and "\nState:\tZ" not in status:
            found.append(int(entry.name))
    return found


@needs_x86_64_linux
def test_no_sandbox_only_when_asked_for(attack: Attack) -> None:
    """``none``: the user's explicit choice to run the layer's code unconfined (say, on a throwaway CI machine);
    the report still says so."""
    answer = verify(attack, "none")
    assert "no sandbox" in str(answer["ran"])
    assert attack.found(answer)["daemon"] == "forked"


@needs_x86_64_linux
@needs_root
def test_root_without_bubblewrap_and_an_interpreter_only_root_may_run_skips_the_import(attack: Attack) -> None:
    """A pyenv in /root (mode 0700): no other user can run its interpreter, so no sandbox can hold the import."""
    private = Path(sys.executable).resolve()
    if not any(not p.stat().st_mode & 0o001 for p in private.parents):
        pytest.skip("this interpreter is reachable by every user")
    answer = verify(attack, env={"PATH": "/nonexistent"})
    assert answer["ran"] is None and "sandbox" in answer["skipped"]["import"]
    assert [w[0] for w in answer["warnings"]] == ["import"]


def system_python() -> str:
    if not Path(SYSTEM_PYTHON).is_file():
        pytest.skip(f"{SYSTEM_PYTHON} (the system's Python, usable by every user) is not installed")
    return SYSTEM_PYTHON


# --- as a user without privileges ------------------------------------------------------------------------------------


@pytest.fixture
def plain_user() -> Iterator[tuple[int, Path]]:
    """A uid without privileges (one no account uses) and a directory it may read: the code under test and
    ``packaging`` copied there, as an installed cdk-pip-layer would be."""
    if not IS_ROOT:
        pytest.skip("running as another user needs root")
    system_python()
    uid = next(u for u in range(23_456, 23_556) if not _has_account(u))
    shared = Path(tempfile.mkdtemp(prefix="cdk-pip-layer-plain-user-"))
    try:
        import cdk_pip_layer
        import packaging

        lib = shared / "lib"
        shutil.copytree(Path(cdk_pip_layer.__file__).parent, lib / "cdk_pip_layer")
        shutil.copytree(Path(packaging.__file__).parent, lib / "packaging")
        work = shared / "work"
        work.mkdir()
        subprocess.run(["chmod", "-R", "a+rX", str(shared)], check=True)
        os.chown(work, uid, uid)
        yield uid, work
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def verify_as(uid: int, work: Path, attack: Attack, path: str) -> dict[str, Any]:
    """Verify the hostile layer as ``uid``, with the system's Python."""
    layer = work / "layer.zip"
    shutil.copy(attack.zip, layer)
    layer.chmod(0o644)
    return verify(
        attack,
        python=SYSTEM_PYTHON,
        zip_path=layer,
        env={"PATH": path, "PYTHONPATH": str(work.parent / "lib")},
        cwd=work,
        user=uid,
        group=uid,
        extra_groups=[],
    )


@needs_x86_64_linux
@needs_bwrap
def test_a_plain_user_with_bubblewrap_contains_a_hostile_layer(attack: Attack, plain_user: tuple[int, Path]) -> None:
    uid, work = plain_user
    assert BWRAP is not None
    answer = verify_as(uid, work, attack, f"{Path(BWRAP).parent}:/usr/bin:/bin")
    assert "bubblewrap" in str(answer["ran"])
    attack.assert_contained(answer)


@needs_x86_64_linux
def test_a_plain_user_without_a_sandbox_gets_a_warning_and_no_import(
    attack: Attack, plain_user: tuple[int, Path]
) -> None:
    uid, work = plain_user
    answer = verify_as(uid, work, attack, "/nonexistent")
    assert answer["ran"] is None and answer["ok"]
    assert "sandbox" in answer["skipped"]["import"]
    assert [w[0] for w in answer["warnings"]] == ["import"]
    assert attack.mark not in answer["summary"] + answer["report"]
    assert survivors(attack.mark, grace=0) == [] and attack.listener.received() == []
