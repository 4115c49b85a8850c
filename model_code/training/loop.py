"""The epoch loop: resume, train (DDP when under torchrun), validate, checkpoint, export.

Every rank trains on its DistributedSampler shard (DDP averages gradients) and validates its
shard of the validation cases (MONAI's metrics gather them); rank 0 alone logs, checkpoints and
writes the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model_code.training import checkpoint, distributed
from model_code.training.config import Task, TrainConfig
from model_code.training.data_common import data_hash
from model_code.training.export import write_bundle
from model_code.training.reporting import CURVE_FILE, Reporter, plot_curve
from model_code.training.seeding import enable_determinism, epoch_seed, seed_everything
from model_code.training.task_base import TrainingTask

log = logging.getLogger("model_code.training")

OCCLUSION_FILE = "occlusion_map.png"


@dataclass
class TrainingResult:
    """What a run did: epochs trained in this process, metrics per epoch, where the model went."""

    resumed_from: int
    trained_epochs: list[int]
    history: list[dict[str, float]] = field(default_factory=list)
    model_dir: Path | None = None


def make_task(config: TrainConfig) -> TrainingTask:
    if config.task is Task.SEGMENTATION:
        from model_code.training.segmentation_task import SegmentationTask

        return SegmentationTask(config)
    from model_code.training.classification_task import ClassificationTask

    return ClassificationTask(config)


def initial_model(config: TrainConfig, task: TrainingTask) -> torch.nn.Module:
    """The network before step 1: seeded (identical on every rank), or the ``--init-bundle`` weights."""
    seed_everything(config.seed)
    model = task.build_network()
    if config.init_bundle is not None:
        from model_code.training.init_bundle import load_bundle_weights

        # Every rank reads the bundle itself: the same file gives the same weights, no broadcast needed.
        load_bundle_weights(config.init_bundle, model, network_def=task.network_def())
        log.info("initial weights from %s", config.init_bundle)
    return model


def _loader(dataset: Any, *, config: TrainConfig, shuffle: bool, sampler: Any, seed: int, batch_size: int) -> Any:
    from monai.data import DataLoader

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=config.num_workers,
        generator=generator,
    )


def _shard(items: list[Any], context: distributed.DistributedContext) -> list[Any]:
    """This rank's share of the validation cases. With fewer cases than ranks every rank takes all:
    the gathered copies are identical, which leaves mean Dice and ROC-AUC unchanged."""
    if len(items) < context.world_size:
        return list(items)
    return list(items[context.rank :: context.world_size])


def run_training(
    config: TrainConfig, *, on_epoch_end: Callable[[int, dict[str, float]], bool | None] | None = None
) -> TrainingResult:
    """Train ``config.epochs`` epochs in total, continuing from the newest valid checkpoint.

    ``on_epoch_end(epoch, metrics)`` runs after each epoch's checkpoint; returning True stops
    training there (the model is still written), raising abandons the run like an interruption.
    """
    context = distributed.setup(rank=config.rank, local_rank=config.local_rank, world_size=config.world_size)
    try:
        return _run(config, context, on_epoch_end)
    finally:
        distributed.teardown(context)


def _run(
    config: TrainConfig,
    context: distributed.DistributedContext,
    on_epoch_end: Callable[[int, dict[str, float]], bool | None] | None,
) -> TrainingResult:
    from monai.data import CacheDataset

    enable_determinism()
    task = make_task(config)  # validates the data on every rank: a bad file stops all of them alike
    model = initial_model(config, task).to(context.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    loss_function = task.build_loss()

    state = checkpoint.load_latest(config.checkpoint_dir, task=config.task.value) if context.is_main else None
    state = distributed.broadcast_from_main(context, state)
    start_epoch, history = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.restore_rng_states(state["rng"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        log.info("resumed from epoch=%d (%s)", start_epoch, config.checkpoint_dir)
    result = TrainingResult(resumed_from=start_epoch, trained_epochs=[], history=history)

    train_transforms = task.train_transforms()
    train_set = CacheDataset(task.train_items, train_transforms, cache_rate=config.cache_rate,
                             num_workers=max(config.num_workers, 1), progress=False)
    # Every rank validates its shard; MONAI's metrics all-gather the shards in aggregate().
    val_set = CacheDataset(_shard(task.val_items, context), task.val_transforms(), cache_rate=config.cache_rate,
                           num_workers=max(config.num_workers, 1), progress=False)
    network: torch.nn.Module = model
    if context.active:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[context.device.index] if context.device.type == "cuda" else None
        )
    reporter = Reporter(config.output_dir) if context.is_main else None
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            metrics = _train_epoch(config, context, task, network, train_set, train_transforms,
                                   optimizer, loss_function, epoch, reporter)
            scheduler.step()
            distributed.sync_buffers(context, model)  # BatchNorm statistics as rank 0 will save them
            metrics.update(task.evaluate(model, _loader(val_set, config=config, shuffle=False, sampler=None,
                                                          seed=config.seed, batch_size=1), context.device))
            if context.is_main:
                history.append({"epoch": epoch, **metrics})
                assert reporter is not None
                reporter.epoch(epoch, metrics)
                checkpoint.save_checkpoint(config.checkpoint_dir, {
                    "task": config.task.value,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": checkpoint.rng_states(),
                    "history": history,
                    "hyperparameters": config.hyperparameters(),
                })
            distributed.barrier(context)  # nobody runs ahead of a checkpoint that is not yet on disk
            result.trained_epochs.append(epoch)
            # A callback may end training early (the demo's time budget); rank 0 decides for all.
            stop = bool(on_epoch_end(epoch, metrics)) if on_epoch_end is not None else False
            if distributed.broadcast_from_main(context, stop):
                log.info("stopping early after epoch %d of %d", epoch, config.epochs)
                break
        if context.is_main:
            result.model_dir = _finish(config, task, model, history, reporter)
        distributed.barrier(context)
    finally:
        if reporter is not None:
            reporter.close()
    return result


def _train_epoch(
    config: TrainConfig,
    context: distributed.DistributedContext,
    task: TrainingTask,
    network: torch.nn.Module,
    train_set: Any,
    train_transforms: Any,
    optimizer: torch.optim.Optimizer,
    loss_function: torch.nn.Module,
    epoch: int,
    reporter: Reporter | None,
) -> dict[str, float]:
    from torch.utils.data.distributed import DistributedSampler

    # Everything random in this epoch follows from (seed, epoch, rank): see seeding.py.
    seed = epoch_seed(config.seed, epoch=epoch, rank=context.rank)
    seed_everything(seed)
    train_transforms.set_random_state(seed=seed)
    sampler: DistributedSampler[Any] | None = None
    if context.active:
        sampler = DistributedSampler(train_set, num_replicas=context.world_size, rank=context.rank,
                                     shuffle=True, seed=config.seed)
        sampler.set_epoch(epoch)
    loader = _loader(train_set, config=config, shuffle=True, sampler=sampler, seed=seed, batch_size=config.batch_size)
    network.train()
    total, count = 0.0, 0
    batches = reporter.progress(loader, epoch=epoch, total=len(loader)) if reporter else loader
    for batch in batches:
        inputs = batch["image"].to(context.device)
        targets = batch["label"].to(context.device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(network(inputs), targets)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * inputs.shape[0]
        count += int(inputs.shape[0])
    return {"train_loss": distributed.mean_over_ranks(context, total, count)}


def _finish(
    config: TrainConfig, task: TrainingTask, model: torch.nn.Module, history: list[dict[str, float]],
    reporter: Reporter | None,
) -> Path:
    final = {k: v for k, v in history[-1].items() if k != "epoch"} if history else {}
    training_data = data_hash(task.data_files, root=config.training_dir)
    run = {
        "training_data_sha256": training_data,
        "trained_epochs": len(history),
        "hyperparameters": config.hyperparameters(),
    }
    write_bundle(config.model_dir, model=model, example=task.example_input(), inference=task.inference_config(),
                 metadata=task.bundle_metadata(metrics=final, extra=run))
    if history:
        plot_curve(history, config.output_dir / CURVE_FILE)
    if config.occlusion_map is not None:
        _occlusion(config, task)
    log.info("model written to %s (%s)", config.model_dir, ", ".join(f"{k}={v:.4f}" for k, v in final.items()))
    return config.model_dir


def _occlusion(config: TrainConfig, task: TrainingTask) -> None:
    from model_code.training.classification_bundle import ClassificationBundle
    from model_code.training.classification_task import ClassificationTask
    from model_code.training.occlusion import write_occlusion_map

    if not isinstance(task, ClassificationTask) or config.occlusion_map is None:
        raise ValueError("--occlusion-map applies to --task classification only")  # parse_config checks first
    # From the bundle just written, as a user would run it: its transforms, its weights, its labels.
    bundle = ClassificationBundle.load(config.model_dir)
    path = write_occlusion_map(model=bundle.network, transforms=bundle.preprocessing, image=config.occlusion_map,
                               classes=bundle.classes, out_path=config.output_dir / OCCLUSION_FILE)
    log.info("occlusion map written to %s", path)
