"""The example app with a plain, prebuilt layer (``Code.from_asset(<dir with layer.zip>)``): the baseline of
``benchmarks/bench_synth.py``. Same resources as ``app.py``; the layer comes from $CDK_PIP_LAYER_BENCH_LAYER_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda, aws_ssm
from constructs import Construct

HERE = Path(__file__).resolve().parent


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
        function = aws_lambda.Function(
            self,
            "QuoteFunction",
            runtime=aws_lambda.Runtime.PYTHON_3_12,
            architecture=aws_lambda.Architecture.X86_64,
            handler="handler.handler",
            code=aws_lambda.Code.from_asset(str(HERE / "function")),
            layers=[layer],
            memory_size=256,
            timeout=cdk.Duration.seconds(10),
            environment={"RATES_URL": "https://api.frankfurter.app/latest"},
        )
        cdk.CfnOutput(self, "LayerVersionArn", value=layer.layer_version_arn)
        cdk.CfnOutput(self, "FunctionName", value=function.function_name)


def main() -> None:
    app = cdk.App()
    PlainStack(app, "CdkPipLayerExample", Path(os.environ["CDK_PIP_LAYER_BENCH_LAYER_ZIP"]))
    app.synth()


if __name__ == "__main__":
    main()
