"""SM_* variables, SM_HPS and torchrun's rank variables, parsed once into a config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_code.training.config import Task, parse_config
from model_code.training.environment import DEFAULT_CHECKPOINT_DIR, TrainingEnvironment

SAGEMAKER = {
    "SM_CHANNEL_TRAINING": "/opt/ml/input/data/training",
    "SM_CHANNEL_VALIDATION": "/opt/ml/input/data/validation",
    "SM_MODEL_DIR": "/opt/ml/model",
    "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
}


@pytest.mark.parametrize(
    ("environ", "argv", "expected"),
    [
        # outside SageMaker: local defaults, and the checkpoint default the issue names
        ({}, [], {"training_dir": Path("data/training"), "validation_dir": None, "model_dir": Path("model"),
                  "output_dir": Path("output"), "checkpoint_dir": DEFAULT_CHECKPOINT_DIR, "epochs": 10}),
        # inside SageMaker: every path from its variable
        (SAGEMAKER, [], {"training_dir": Path("/opt/ml/input/data/training"),
                         "validation_dir": Path("/opt/ml/input/data/validation"),
                         "model_dir": Path("/opt/ml/model"), "output_dir": Path("/opt/ml/output/data")}),
        # SM_HPS as the SDK writes it (strings JSON-encoded), sagemaker_* entries ignored
        ({"SM_HPS": json.dumps({"epochs": "7", "batch-size": 3, "learning_rate": "0.001", "task": "classification",
                                "cache-rate": 0.5, "sagemaker_program": "train.py"})}, [],
         {"epochs": 7, "batch_size": 3, "learning_rate": 0.001, "task": Task.CLASSIFICATION, "cache_rate": 0.5}),
        # a flag on the command line wins over SM_HPS
        ({"SM_HPS": json.dumps({"epochs": 7, "seed": 5})}, ["--epochs", "2"], {"epochs": 2, "seed": 5}),
        # a flag wins over SM_CHANNEL_TRAINING too (a local rerun of a SageMaker command)
        (SAGEMAKER, ["--train-channel", "/data/x", "--checkpoint-dir", "/tmp/c"],
         {"training_dir": Path("/data/x"), "checkpoint_dir": Path("/tmp/c")}),
        # torchrun's variables give the rank
        ({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}, [], {"rank": 1, "local_rank": 1, "world_size": 2}),
        # an empty variable is the same as an absent one
        ({"SM_CHANNEL_VALIDATION": "", "SM_HPS": ""}, [], {"validation_dir": None, "epochs": 10}),
    ],
)
def test_environment_and_flags_resolve_to_one_config(environ, argv, expected):
    config = parse_config(argv, TrainingEnvironment.from_environ(environ))
    assert {key: getattr(config, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SM_HPS": "{epochs: 3"}, "SM_HPS must be a JSON object"),  # not JSON
        ({"SM_HPS": "[3]"}, "SM_HPS must be a JSON object"),  # JSON, but not an object
        ({"SM_HPS": json.dumps({"epoch": 3})}, "hyperparameter 'epoch' is not a trainer flag"),  # typo
        ({"SM_HPS": json.dumps({"epochs": "three"})}, "hyperparameter 'epochs'='three' is invalid"),
        ({"SM_HPS": json.dumps({"epochs": 0})}, "must be >= 1"),
        ({"SM_HPS": json.dumps({"task": "detection"})}, "hyperparameter 'task'='detection' is invalid"),
        ({"SM_HPS": json.dumps({"roi-size": 40})}, "multiple of 16"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "inconsistent"),
    ],
)
def test_bad_environment_names_the_variable(environ, message):
    with pytest.raises(ValueError, match=message):
        parse_config([], TrainingEnvironment.from_environ(environ))


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--task", "detection"], "invalid Task value"),
        (["--cache-rate", "1.5"], "must be within 0..1"),
        (["--batch-size", "0"], "must be >= 1"),
    ],
)
def test_bad_flags_exit_with_usage(argv, error, capsys):
    with pytest.raises(SystemExit):
        parse_config(argv, TrainingEnvironment())
    assert error in capsys.readouterr().err
