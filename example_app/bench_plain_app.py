"""The example app with a plain, prebuilt layer (``Code.from_asset(<dir with layer.zip>)``): the baseline of
``benchmarks/bench_synth.py``. Same resources as ``app.py``; the layer comes from $CDK_PIP_LAYER_BENCH_LAYER_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from app import add_quote_function  # the example app beside this file (run as a script from example_app/)
from aws_cdk import aws_lambda, aws_ssm
from constructs import Construct


class PlainStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, layer_zip: Path) -> None:
        super().__init__(scope, construct_id)
        layer = aws_lambda.LayerVersion(
            self,
            "HttpJsonLayer",
            code=aws_lambda.Code.from_asset(str(layer_zip)),
            compatible_runtimes=[aws_lambda.Runtime.PYTHON_3_12],
            compatible_architectures=[aws_lambda.Architecture.X86_64],
            description="requests, pydantic and orjson for python3.12 on x86_64",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        aws_ssm.StringParameter(
            layer,
            "ArnParameter",
            parameter_name="/cdk-pip-layer-example/layers/http-json/arn",
            string_value=layer.layer_version_arn,
        )
        add_quote_function(self, layer)


def main() -> None:
    app = cdk.App()
    PlainStack(app, "CdkPipLayerExample", Path(os.environ["CDK_PIP_LAYER_BENCH_LAYER_ZIP"]))
    app.synth()


if __name__ == "__main__":
    main()
