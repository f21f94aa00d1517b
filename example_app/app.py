"""Example CDK app: a shared layer with an HTTP client, a validation library and a fast JSON library, built from a
pinned requirements file, and a Python 3.12 function that uses it.

    bash scripts/setup.sh && node_modules/.bin/cdk synth
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda
from constructs import Construct

from cdk_pip_layer import PipLambdaLayer

HERE = Path(__file__).resolve().parent


class ExampleStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        layer = PipLambdaLayer(
            self,
            "HttpJsonLayer",
            requirements=HERE / "layer" / "requirements.txt",
            runtime="python3.12",
            architecture="x86_64",
            # Nothing here depends on boto3. When a requirement pulls it in, add exclude=("boto3", "botocore"):
            # the runtime has its own copy (an exclude that matches nothing is reported as a warning).
            description="requests, pydantic and orjson for python3.12 on x86_64",
            ssm_parameter_name="/cdk-pip-layer-example/layers/http-json/arn",
        )
        add_quote_function(self, layer)


def add_quote_function(stack: cdk.Stack, layer: aws_lambda.ILayerVersion) -> aws_lambda.Function:
    """The function that uses the layer, and the stack's outputs (shared with the benchmark's plain variant)."""
    function = aws_lambda.Function(
        stack,
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
    cdk.CfnOutput(stack, "LayerVersionArn", value=layer.layer_version_arn)
    cdk.CfnOutput(stack, "FunctionName", value=function.function_name)
    return function


def main() -> None:
    app = cdk.App()
    ExampleStack(app, "CdkPipLayerExample")
    app.synth()


if __name__ == "__main__":
    main()
