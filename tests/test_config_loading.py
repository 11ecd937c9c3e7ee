"""hyena_platform.config: job files load into pydantic sections strictly, with one-line errors.

The per-job tests (test_train_config, test_score_config, ...) check each job's own keys; these
check the rules every job shares: what a value may be, and how a mistake is reported.
"""

from __future__ import annotations

import re

import pytest
import yaml

from hyena_platform.config import apply_overrides, from_mapping, load_config
from hyena_platform.data.config import DataConfig, GenomeSection
from hyena_platform.errors import ConfigError
from hyena_platform.finetune.config import FinetuneTrainSection, TaskSection
from hyena_platform.jobs import KINDS, load_job
from hyena_platform.train.config import PretrainJob, TrainSection


def error(cls, data, prefix=""):
    with pytest.raises(ConfigError) as info:
        from_mapping(cls, data, source="job.yaml", prefix=prefix)
    message = str(info.value)
    assert message.startswith("job.yaml: ") and "\n" not in message, message
    return message


@pytest.mark.parametrize("data, expected", [
    ({"steps": True}, "train.steps must be an integer, got bool True"),  # pydantic's lax mode would take 1
    ({"steps": "12"}, "train.steps must be an integer, got str '12'"),
    ({"steps": 2.5}, "train.steps must be an integer, got float 2.5"),
    ({"lr": True}, "train.lr must be a number, got bool True"),
    ({"lr": "fast"}, "train.lr must be a number, got str 'fast'"),
    ({"lr": float("nan")}, "train.lr must be a finite number, got nan"),
    ({"activation_checkpointing": 1}, "train.activation_checkpointing must be true or false, got int 1"),
    ({"activation_checkpointing": "yes"}, "train.activation_checkpointing must be true or false, got str 'yes'"),
    ({"betas": [0.9, 0.99, 0.9]}, "train.betas must hold 2 items, got [0.9, 0.99, 0.9]"),
    ({"betas": "0.9"}, "train.betas must be a list, got str '0.9'"),
    ({"precision": "fp16"}, "train.precision must be one of 'auto', 'fp32', 'bf16', got 'fp16'"),
    ({"stages": [{"length": 64, "steps": "x"}]}, "train.stages[0].steps must be an integer, got str 'x'"),
    ({"baseline_orders": [1, "a"]}, "train.baseline_orders[1] must be an integer, got str 'a'"),
])
def test_a_wrong_value_names_the_dotted_key_and_what_is_valid(data, expected):
    assert error(TrainSection, data, prefix="train.") == f"job.yaml: {expected}"


def test_values_that_mean_what_they_say_are_taken():
    t = from_mapping(TrainSection, {"steps": 12.0, "lr": "3e-4", "betas": [0, 0.5]}, source="j")
    assert (t.steps, t.lr, t.betas) == (12, 3e-4, (0.0, 0.5))  # YAML 1.1 reads 3e-4 as a string
    assert isinstance(t.steps, int) and isinstance(t.betas, tuple)
    # Ensembl names human chromosomes 1, 2, ... X: YAML reads the numbers as ints.
    d = from_mapping(DataConfig, {"fasta": ["a.fa"], "valid_chroms": [1, "X"]}, source="j")
    assert d.valid_chroms == ["1", "X"]


def test_unknown_keys_list_the_valid_keys_and_the_known_mistakes_say_why():
    assert error(PretrainJob, {"trian": {}, "zzz": 1}) == (
        "job.yaml: unknown key trian (and zzz); valid keys in top level: checkpoint, data, kind, model, "
        "scaling, submission, tracking, train")
    message = error(GenomeSection, {"seed": 3}, prefix="data.")
    assert message.startswith("job.yaml: unknown key data.seed; valid keys in data: exclude, fasta, include, "
                              "index_cache, min_length; it shapes training splits or windows"), message
    # A misspelt key is reported, not the required key it was meant to be.
    assert "unknown key train.stages[0].stepz" in error(TrainSection, {"stages": [{"length": 64, "stepz": 2}]},
                                                       prefix="train.")


def test_sections_unions_and_cross_field_checks():
    assert error(PretrainJob, {"train": "x"}) == "job.yaml: train must be a mapping, got str 'x'"
    assert error(PretrainJob, [1]) == "job.yaml: top level must be a mapping, got list"
    assert error(FinetuneTrainSection, {"class_weights": "balancd"}, prefix="train.") == (
        "job.yaml: train.class_weights must be 'none', 'balanced' or a list, got str 'balancd'")
    # __post_init__ checks (also run when code builds a section) name the section.
    assert error(DataConfig, {"fasta": ["a.fa"], "shards": "s"}, prefix="data.").startswith(
        "job.yaml: data: set either fasta")
    # validate() checks run after loading, innermost first.
    assert error(TrainSection, {"global_batch": 0}, prefix="train.") == (
        "job.yaml: train: train.global_batch must be >= 1, got 0")
    assert error(TaskSection, {"type": "token", "token_mlp": 64}, prefix="task.").startswith(
        "job.yaml: task: task.token_mlp applies to sequence tasks only")
    assert from_mapping(TaskSection, {"token_mlp": 64}, source="j").token_mlp == 64


def test_set_overrides_use_yaml_scalars_and_name_bad_paths(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"model": {"variant": "tiny-1k"}}))
    job = load_config(PretrainJob, path, ["train.lr=1e-3", "train.betas=[0.8, 0.9]", "checkpoint.name=run1"])
    assert (job.train.lr, job.train.betas, job.checkpoint.name) == (1e-3, (0.8, 0.9), "run1")
    with pytest.raises(ConfigError, match=r"--set 'model.variant.x=1': model.variant in j is a value, not a section"):
        apply_overrides({"model": {"variant": "tiny-1k"}}, ["model.variant.x=1"], source="j")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.lr"], source="j")


def test_every_kind_loads_through_the_shared_loader(tmp_path):
    """A strict-key error from each kind: every job section is a pydantic section."""
    for name in KINDS:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"kind": name, "no_such_key": 1}))
        with pytest.raises(ConfigError) as info:
            load_job(path)
        assert re.match(rf"{re.escape(str(path))}: unknown key no_such_key; valid keys in top level: .*\bkind\b",
                        str(info.value)), (name, str(info.value))
