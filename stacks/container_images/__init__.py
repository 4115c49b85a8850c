"""Image build stack: ECR repositories and the pipeline that builds and pushes the containers."""
