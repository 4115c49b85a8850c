"""Training workflow: Step Functions runs a SageMaker training job and registers the model package."""
