"""A Ray Train run that fails (a worker out of memory, a controller error) ends in one line with
a non-zero exit, not Ray's multi-line ControllerError / WorkerGroupError and its traceback
(issue 16): `train.launch.fit_interruptible`, which pretraining and fine-tuning both call."""

from __future__ import annotations

import pytest

from hyena_platform.errors import InputError
from hyena_platform.train.launch import TrainingRunError, training_failure


def test_worker_and_controller_failures_become_one_line():
    from ray.train import ControllerError, WorkerGroupError

    oom = training_failure(WorkerGroupError("rank 1: ...\nTraceback ...", {
        1: RuntimeError("boom"), 0: MemoryError("could not allocate 2.0 GiB\n  at frame 3")}))
    assert isinstance(oom, TrainingRunError) and oom.exit_code != 0
    text = str(oom)
    assert "\n" not in text and text.startswith("training worker 0 failed (MemoryError: could not allocate 2.0 GiB)")
    assert "out of memory: lower train.micro_batch" in text and "rerun the same command to resume" in text

    crashed = str(training_failure(ControllerError(RuntimeError("callback failed\nTraceback (most recent ..."))))
    assert crashed == ("the training controller failed (RuntimeError: callback failed); rerun the same command "
                       "to resume from the last checkpoint")
    nested = training_failure(ControllerError(WorkerGroupError("x", {0: ValueError("bad value")})))
    assert str(nested).startswith("training worker 0 failed (ValueError: bad value)")


def test_a_user_error_raised_in_a_worker_comes_back_as_itself():
    from ray.train import WorkerGroupError

    err = training_failure(WorkerGroupError("x", {0: InputError("data.fa:3: bad base 'X'; fix the FASTA\nmore")}))
    assert type(err) is InputError and str(err) == "data.fa:3: bad base 'X'; fix the FASTA"


@pytest.mark.integration
def test_a_worker_out_of_memory_ends_the_fit_in_one_typed_error(ray_cluster, tmp_path):
    """A real Ray Train run on the session's Ray whose worker raises MemoryError at its first step."""
    import ray.train
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from hyena_platform.train.launch import fit_interruptible

    def loop(config):
        raise MemoryError("simulated: the step's activations did not fit")

    trainer = DataParallelTrainer(
        loop, scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
        run_config=ray.train.RunConfig(name="oom", storage_path=str(tmp_path),
                                       failure_config=ray.train.FailureConfig(max_failures=0)))
    with pytest.raises(TrainingRunError) as caught:
        fit_interruptible(trainer)
    message = str(caught.value)
    assert "\n" not in message and "MemoryError: simulated: the step's activations did not fit" in message
    assert "out of memory" in message
