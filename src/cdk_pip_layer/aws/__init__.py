"""The AWS SDK in one place: a boto3 session whose credentials and region are checked before any request, and the
one call helper every AWS request goes through (publishing a layer, the layer store on S3). Imported only when AWS
is used: boto3 is an optional extra."""
