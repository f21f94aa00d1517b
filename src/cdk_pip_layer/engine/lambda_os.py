"""What a Lambda runtime's OS gives a layer: the C and C++ runtime levels, the shared libraries of its base image,
the Python distributions the runtime ships, where it looks for code, and the byte-code its Python reads.

Pure tables, cited. Everything the verifier knows about the machine a layer lands on lives here (the Python
version, glibc level and machine of each runtime are :mod:`.target`'s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .target import LambdaTarget

AMAZON_LINUX_2 = "Amazon Linux 2"
AMAZON_LINUX_2023 = "Amazon Linux 2023"


@dataclass(frozen=True)
class CxxRuntime:
    """The newest symbol versions the OS's ``libstdc++.so.6`` defines."""

    gcc: str
    glibcxx: tuple[int, ...]  # GLIBCXX_3.4.N
    cxxabi: tuple[int, ...]  # CXXABI_1.3.N


# The system libstdc++ of each OS, and the symbol versions it defines.
# - Amazon Linux 2 ships gcc 7.3 (libstdc++-7.3.1, libstdc++.so.6.0.24 in the Lambda base image: lambci/docker-lambda,
#   base/base-2/packages.txt and fs.txt, dumped from the provided.al2 environment); Amazon Linux 2023 ships gcc 11
#   (libstdc++-11.4.1; AWS, "Amazon Linux 2023 User Guide: Improved toolchain: gcc, binutils, and glibc",
#   https://docs.aws.amazon.com/linux/al2023/ug/glibc-gcc-and-binutils.html: glibc 2.26 -> 2.34, gcc 7.3 -> 11).
# - GCC's libstdc++ manual, "ABI Policy and Guidelines", https://gcc.gnu.org/onlinedocs/libstdc++/manual/abi.html:
#   "GCC 7.2.0: GLIBCXX_3.4.24, CXXABI_1.3.11" (unchanged in 7.3) and "GCC 11.1.0: GLIBCXX_3.4.29, CXXABI_1.3.13"
#   (GLIBCXX_3.4.30 arrives with GCC 12.1.0).
_CXX: Mapping[str, CxxRuntime] = {
    AMAZON_LINUX_2: CxxRuntime("7.3", (3, 4, 24), (1, 3, 11)),
    AMAZON_LINUX_2023: CxxRuntime("11", (3, 4, 29), (1, 3, 13)),
}

# Shared objects (sonames) every Lambda Python runtime of the OS has in /lib64, /usr/lib64 or /var/lang/lib.
# - glibc's own libraries (both OSes; glibc 2.34 merged libpthread, libdl, librt and libutil into libc, but keeps the
#   names as stubs, so extensions linked against them still load).
_GLIBC = (
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1", "libresolv.so.2",
    "libanl.so.1", "libBrokenLocale.so.1", "libthread_db.so.1",
    "libnss_files.so.2", "libnss_dns.so.2",
)  # fmt: skip
_LOADER = {"x86_64": "ld-linux-x86-64.so.2", "aarch64": "ld-linux-aarch64.so.1"}
# - Amazon Linux 2: the packages of Lambda's provided.al2 environment (lambci/docker-lambda, base/base-2/packages.txt:
#   glibc 2.26, libgcc/libstdc++ 7.3.1, zlib 1.2.7, openssl-libs 1.0.2k, krb5-libs, libffi 3.0.13, ncurses 6.0, pcre,
#   nss, gmp, libicu 50, ...) and the sonames of fs.txt; the Python runtimes add /var/lang/lib, where AWS builds the
#   libraries Python itself needs (e.g. liblzma.so.5: aws/aws-lambda-base-images#127).
_AL2 = (
    "libnsl.so.1", "libcrypt.so.1", "libgcc_s.so.1", "libstdc++.so.6", "libz.so.1", "libssl.so.10",
    "libcrypto.so.10", "libffi.so.6",
    "libgssapi_krb5.so.2", "libkrb5.so.3", "libk5crypto.so.3", "libkrb5support.so.0", "libcom_err.so.2",
    "libkeyutils.so.1", "libgssrpc.so.4", "libkdb5.so.8", "libkrad.so.0", "libverto.so.1",
    "libselinux.so.1", "libsepol.so.1", "libpcre.so.1", "libpcre16.so.0", "libpcre32.so.0", "libpcrecpp.so.0",
    "libpcreposix.so.0", "libacl.so.1", "libattr.so.1", "libcap.so.2", "libgmp.so.10", "libgmpxx.so.4",
    "libncurses.so.6", "libncursesw.so.6", "libtinfo.so.6", "libform.so.6", "libformw.so.6", "libmenu.so.6",
    "libmenuw.so.6", "libpanel.so.6", "libpanelw.so.6", "libtic.so.6", "libpopt.so.0", "libtasn1.so.6",
    "libp11-kit.so.0", "libnspr4.so", "libplc4.so", "libplds4.so", "libnssutil3.so", "libfreebl3.so",
    "libfreeblpriv3.so", "libicudata.so.50", "libicui18n.so.50", "libicuio.so.50", "libicule.so.50",
    "libiculx.so.50", "libicutest.so.50", "libicutu.so.50", "libicuuc.so.50", "libmvec.so.1",
    # /var/lang/lib of the Python runtimes (Python's own dependencies, built by AWS)
    "libssl.so.1.1", "libcrypto.so.1.1", "liblzma.so.5", "libbz2.so.1", "libsqlite3.so.0", "libexpat.so.1",
    "libuuid.so.1",
)  # fmt: skip
# - Amazon Linux 2023: the packages of the Lambda python3.12 image (`rpm -qa` in public.ecr.aws/lambda/python:3.12,
#   amazonlinux/amazon-linux-2023#585: glibc 2.34, bzip2-libs, glib2, json-c, keyutils-libs, krb5-libs, libacl,
#   libarchive, libattr, file-libs, gmp, gpgme, curl-minimal, ...), the AL2023 minimal base the provided.al2023 runtime
#   is built from (AWS Compute Blog, "Introducing the Amazon Linux 2023 runtime for AWS Lambda"), with libgcc/libstdc++
#   11, openssl-libs 3, zlib, libffi 3.4, xz-libs, sqlite-libs, ncurses-libs, pcre2, libxcrypt.
_AL2023 = (
    "libcrypt.so.2", "libgcc_s.so.1", "libstdc++.so.6", "libz.so.1", "libssl.so.3", "libcrypto.so.3", "libffi.so.8",
    "libgssapi_krb5.so.2", "libkrb5.so.3", "libk5crypto.so.3", "libkrb5support.so.0", "libcom_err.so.2",
    "libkeyutils.so.1", "libverto.so.1", "libselinux.so.1", "libsepol.so.2", "libpcre2-8.so.0", "libacl.so.1",
    "libattr.so.1", "libcap.so.2", "libgmp.so.10", "libncursesw.so.6", "libtinfo.so.6", "libbz2.so.1",
    "liblzma.so.5", "libzstd.so.1", "liblz4.so.1", "libsqlite3.so.0", "libexpat.so.1", "libuuid.so.1",
    "libblkid.so.1", "libmount.so.1", "libsmartcols.so.1", "libcurl.so.4", "libnghttp2.so.14", "libidn2.so.0",
    "libunistring.so.2", "libglib-2.0.so.0", "libgobject-2.0.so.0", "libgio-2.0.so.0", "libgmodule-2.0.so.0",
    "libgthread-2.0.so.0", "libmagic.so.1", "libjson-c.so.5", "libarchive.so.13", "libxml2.so.2",
    "libgpgme.so.11", "libassuan.so.0", "libgpg-error.so.0", "libgcrypt.so.20", "libpopt.so.0",
    "libtasn1.so.6", "libp11-kit.so.0", "libaudit.so.1", "libcap-ng.so.0", "libmpfr.so.6", "libsigsegv.so.2",
    "libyaml-0.so.2", "libreadline.so.8", "libmvec.so.1",
)  # fmt: skip
_OS_LIBRARIES: Mapping[str, frozenset[str]] = {
    AMAZON_LINUX_2: frozenset(_GLIBC + _AL2),
    AMAZON_LINUX_2023: frozenset(_GLIBC + _AL2023),
}

# Lambda's size limits (AWS, "Lambda quotas", https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
# - "250 MB" unzipped for a function's code and all its layers together; Lambda's error names the exact figure,
#   262,144,000 bytes (250 MiB). A hard limit: no setting lifts it, and splitting a layer does not help.
LAMBDA_UNZIPPED_LIMIT = 262_144_000
# - A layer above this leaves little of the limit to the function's own code and its other layers.
UNZIPPED_WARNING = 200 * 1024 * 1024
# - "50 MB" zipped for a zip sent in the request itself (52,428,800 bytes: 50 MiB); a larger one is uploaded through
#   S3, as CDK always does. Not a limit of the layer: a note in its report.
ZIPPED_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024

# What the Lambda Python runtimes ship in /var/runtime (on sys.path after the layers): the AWS SDK for Python and
# its dependencies (AWS, "Building Lambda functions with Python": "the runtime includes the AWS SDK for Python
# (Boto3)"). A layer that leaves them out (exclude=boto3, botocore) gets AWS's copies, in AWS's versions.
RUNTIME_DISTRIBUTIONS = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3", "awslambdaric"}
)
# The value of ``exclude`` that leaves out what the target's runtime provides (see RUNTIME_PROVIDED).
RUNTIME_PRESET = ":runtime:"
# What each Python runtime ships in /var/runtime, by version where it is known: AWS updates these in place (by
# region, over time) and no longer publishes a table; its docs ("Building Lambda functions with Python",
# "Runtime-included SDK versions") give a function that prints them. None: shipped, in a version nobody published.
# - python3.10: boto3 1.26.90, botocore 1.29.90 (AWS's "Lambda runtimes" table, October 2023, as quoted in
#   aws/aws-lambda-base-images#118); AWS has updated the runtime since, so a requirement on a newer one keeps it.
# - python3.12, python3.13: boto3 1.38.36, botocore 1.38.36 (printed by functions on both runtimes, August 2025,
#   terricain/aioboto3#381).
# - python3.11, python3.14, and the companions (s3transfer, jmespath, python-dateutil, six, urllib3): not published.
# The preset excludes one of them only when its version here satisfies every requirement on it that stays (the
# requirements file's and the layer's): a version pinned to something else, or one nobody published, stays.
_COMPANIONS: Mapping[str, str | None] = {
    "s3transfer": None,
    "jmespath": None,
    "python-dateutil": None,
    "six": None,
    "urllib3": None,
}


def _sdk(version: str | None, botocore: str | None = None) -> Mapping[str, str | None]:
    return {"boto3": version, "botocore": botocore or version, **_COMPANIONS}


RUNTIME_PROVIDED: Mapping[str, Mapping[str, str | None]] = {
    "python3.10": _sdk("1.26.90", "1.29.90"),
    "python3.11": _sdk(None),
    "python3.12": _sdk("1.38.36"),
    "python3.13": _sdk("1.38.36"),
    "python3.14": _sdk(None),
}
# The top-level modules of those distributions (for the smoke import, which cannot have AWS's copies).
RUNTIME_MODULES = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"})

# The shebangs a script in the layer's bin/ (on PATH as /opt/bin) may carry: the runtime's own Python is
# /var/lang/bin/python3.X, and PATH begins with /var/lang/bin, so "#!/usr/bin/env python3" finds it too.
SHELLS = frozenset({"/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash", "/usr/bin/env"})
RUNTIME_BIN = "/var/lang/bin/"

# Where the runtime imports from in a layer (extracted to /opt): /opt/python and
# /opt/python/lib/python3.X/site-packages (AWS, "Working with layers for Python Lambda functions").
LAYER_PYTHON = "python/"
# The layer's bin/ is on PATH (/opt/bin) (and its lib/ on LD_LIBRARY_PATH, /opt/lib).
LAYER_BIN = "bin/"

# Byte-code: CPython's magic number of each runtime's Python (importlib.util.MAGIC_NUMBER of CPython 3.10.13,
# 3.11.7, 3.12.1, 3.13.0), and the range each minor version's numbers are taken from
# (Lib/importlib/_bootstrap_external.py: 3.8 uses 3400-3419 (final 3413), 3.9 3420-3429 (final 3425), 3.10
# 3430-3449, 3.11 3450-3499, 3.12 3500-3549, 3.13 3550-3599, 3.14 3600-3649). A release reads only its own final
# number; the range names the version that wrote a file (3.8 and 3.9 only to name them: Lambda no longer runs them).
PYC_MAGIC: Mapping[tuple[int, int], int] = {(3, 10): 3439, (3, 11): 3495, (3, 12): 3531, (3, 13): 3571}
_PYC_RANGES = (((3, 8), 3400, 3419), ((3, 9), 3420, 3429), ((3, 10), 3430, 3449), ((3, 11), 3450, 3499),
               ((3, 12), 3500, 3549), ((3, 13), 3550, 3599), ((3, 14), 3600, 3649))  # fmt: skip


def pyc_version(magic: int) -> tuple[int, int] | None:
    """The Python minor version whose magic-number range holds ``magic`` (None: older, newer or not Python's)."""
    return next((version for version, low, high in _PYC_RANGES if low <= magic <= high), None)


def pyc_loads(magic: int, target: LambdaTarget) -> bool:
    """Whether the target's Python reads a ``.pyc`` with this magic number."""
    exact = PYC_MAGIC.get(target.python_version)
    if exact is not None:
        return magic == exact
    return pyc_version(magic) == target.python_version  # 3.14: its final number is the newest of its range


def cxx_runtime(target: LambdaTarget) -> CxxRuntime:
    return _CXX[target.os_name]


def os_libraries(target: LambdaTarget) -> frozenset[str]:
    """Sonames the runtime's base image provides for the target's machine."""
    python_lib = "libpython{}.{}.so.1.0".format(*target.python_version)
    return _OS_LIBRARIES[target.os_name] | {_LOADER[target.machine], python_lib}
