"""``moto_server`` with one bug of moto 5.2.5 corrected, for the tests that enforce IAM.

With IAM enforced, moto checks each request's SigV4 signature by signing it again; for a Lambda request without a
body (every GET and DELETE: ListLayerVersions, GetLayerVersion, DeleteLayerVersion, …) it signs the request's
headers as if they were a form body, so a correctly signed request fails with SignatureDoesNotMatch. Here such a
request is re-signed with the empty body it has. Nothing else of moto changes.

Run as ``python _moto_iam_server.py -H 127.0.0.1 -p PORT`` (the arguments of ``moto_server``).
"""

from __future__ import annotations

import sys
from typing import Any

from botocore.awsrequest import AWSRequest
from moto.iam import access_control
from moto.server import main

_BODILESS = ("GET", "HEAD", "DELETE")
_original = access_control.IAMRequestBase._create_aws_request


def _create_aws_request(self: Any) -> AWSRequest:
    request: AWSRequest = _original(self)
    if self._method in _BODILESS and not self._body:
        request = AWSRequest(method=request.method, url=request.url, data=b"", headers=request.headers)
        request.context["timestamp"] = request.headers["X-Amz-Date"]
    return request


if __name__ == "__main__":
    access_control.IAMRequestBase._create_aws_request = _create_aws_request  # type: ignore[method-assign]
    main(sys.argv[1:])
