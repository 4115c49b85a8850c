"""MONAI code that runs inside the platform's containers. Never imports aws_cdk."""
