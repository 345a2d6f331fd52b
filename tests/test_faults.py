"""Hostile input and faults: each gives a clear error naming its cause, leaves the run
folder consistent, and loses nothing a resume cannot recover."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from granger_prune import Causal, Rank, Schedule, SGDConfig, Significance, load_dataset
from granger_prune.exceptions import (CheckpointError, DegenerateLayerWarning, NonFiniteGradientError,
                                      NonFiniteLossError)
from granger_prune.network import MaskEnforcer
from granger_prune.network.saved import load_pruned_model, save_pruned_model
from granger_prune.record import DiskTrajectory, TrajectoryRecorder, gradient_norms, optimizer_step
from granger_prune.study import run_folder
from granger_prune.study.config import StudyConfig, resolve_study
from granger_prune.study.run_folder import RunFolder
from granger_prune.study.runner import run_study
from granger_prune.training import pretrain, prune_and_retrain
from granger_prune.zoo import MLP

TINY = ["seeds=[0]", "sparsities=[0.5,0.9]", "model_options.hidden=[16]", "schedule.n_pre=1",
        "schedule.n_iter=2", "schedule.n_prune=1", "schedule.n_post=1", "sgd.batch_size=64",
        'methods=[{"name": "causal"}, {"name": "magnitude"}]']
COMPARED = ("results.csv", "summary.csv", "diagnostics.csv", "comparisons.csv")


def tiny_config(extra=()):
    return StudyConfig.from_toml(resolve_study("digits_phase_shift")).with_overrides(TINY + list(extra))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the tiny study, in this process."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run_study(tiny_config(), out, progress=None)
    return out


def assert_same_tables(run, reference):
    for name in COMPARED:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


def status(run):
    return json.loads((run / "run.json").read_text())["status"]


# -- non-finite values and divergence -----------------------------------------------------

def test_a_nan_gradient_stops_before_the_step_and_names_the_tensor():
    torch.manual_seed(0)
    model = MLP(4, (8,), 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    optimizer_step(model, optimizer, nn.functional.cross_entropy, x, y)
    target = dict(model.named_parameters())["3.weight"]
    target.register_hook(lambda grad: grad * float("nan"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(NonFiniteGradientError, match=r"gradient of '3.weight' holds 24 NaN .* at step 7"):
        optimizer_step(model, optimizer, nn.functional.cross_entropy, x, y, step=7)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name  # the step was not taken
    recorder = TrajectoryRecorder(model, {"3.weight": target})  # the same through the recorder
    with pytest.raises(NonFiniteGradientError, match="'3.weight'.*step 0 of the recording"):
        recorder.step(optimizer, nn.functional.cross_entropy, x, y)


#: A float32 2-norm of at most 32 entries (the MLP(4, (8,), 3) weights), against float64.
NORM32_RTOL = 32 * float(np.finfo(np.float32).eps)


def test_gradient_norms_are_each_parameters_norm_with_zero_for_a_missing_gradient():
    torch.manual_seed(0)
    model = MLP(4, (8,), 3)
    unused = nn.Parameter(torch.ones(5))  # in the optimizer, no gradient reaches it
    optimizer = torch.optim.SGD([*model.parameters(), unused], lr=0.1)
    _, taken, norms = optimizer_step(model, optimizer, nn.functional.cross_entropy, torch.randn(16, 4),
                                     torch.randint(0, 3, (16,)), return_grad_norms=True)
    assert taken and norms.dtype == torch.float32 and norms.shape == (5,)
    expected = [float(torch.linalg.vector_norm(p.grad.double())) for p in model.parameters()] + [0.0]
    # a float32 sum of at most 32 squares: at most 32 float32 epsilons relative
    np.testing.assert_allclose(norms.numpy(), expected, rtol=NORM32_RTOL, atol=0)
    # mixed dtypes take the per-tensor path and give the same norms
    wide = nn.Parameter(torch.ones(3, dtype=torch.float64))
    wide.grad = torch.full((3,), 2.0, dtype=torch.float64)
    mixed = torch.optim.SGD([*model.parameters(), wide], lr=0.1)
    np.testing.assert_allclose(gradient_norms(mixed).numpy(), expected[:-1] + [np.sqrt(12.0)],
                               rtol=NORM32_RTOL, atol=0)
    # float16 gradients are normed in float32: 1e4 entries of 1000 have norm 1e5 > float16's max
    half = nn.Parameter(torch.zeros(10_000, dtype=torch.float16))
    half.grad = torch.full((10_000,), 1000.0, dtype=torch.float16)
    # (a float32 sum of 1e4 squares: a relative error of at most 1e4 float32 epsilons)
    np.testing.assert_allclose(gradient_norms(torch.optim.SGD([half], lr=0.1)).numpy(), [1e5],
                               rtol=10_000 * float(np.finfo(np.float32).eps), atol=0)


def test_huge_finite_gradients_are_no_error_though_their_norm_overflows():
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-21)
    x = torch.full((2, 4), 1e20)  # gradient entries 2e20: finite, their squares are not
    _, taken, norms = optimizer_step(model, optimizer, lambda out, y: out.sum(), x, None,
                                     return_grad_norms=True)
    assert taken and torch.isinf(norms).all() and torch.isfinite(model.weight).all()
    assert not torch.equal(model.weight, torch.ones(1, 4))  # the step was taken


def test_the_recorded_gradient_norm_covers_recorded_tensors_outside_the_optimizer():
    torch.manual_seed(0)
    model = MLP(4, (8,), 3)
    params = dict(model.named_parameters())
    optimizer = torch.optim.SGD(model[3].parameters(), lr=0.1)  # 1.weight is recorded, not optimised
    recorder = TrajectoryRecorder(model, {n: params[n] for n in ("1.weight", "3.weight")})
    recorder.step(optimizer, nn.functional.cross_entropy, torch.randn(16, 4), torch.randint(0, 3, (16,)))
    expected = np.sqrt(sum(float((params[n].grad.double() ** 2).sum()) for n in ("1.weight", "3.weight")))
    np.testing.assert_allclose(recorder.trajectory.grad_norms(), [expected], rtol=NORM32_RTOL, atol=0)
    assert not recorder.trajectory.deltas("1.weight").any()  # it did not move


def test_an_infinite_loss_stops_before_backward_and_names_the_step():
    model = MLP(4, (8,), 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteLossError, match="inf at step 3 of epoch 1.*lower learning rate"):
        optimizer_step(model, optimizer, lambda out, y: out.sum() * float("inf"), torch.ones(2, 4),
                       torch.zeros(2, dtype=torch.long), step="3 of epoch 1")
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_a_diverging_study_stops_naming_where_and_keeps_its_folder_resumable(tmp_path):
    config = tiny_config(["sgd.lr=1e20"])  # the weights overflow: an infinite loss
    with pytest.raises(FloatingPointError, match="at step") as caught:
        run_study(config, tmp_path / "run", progress=None)
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "pre-training seed 0" in notes and "kept unfinished" in notes
    assert status(tmp_path / "run") == "unfinished" and not (tmp_path / "run" / "results.csv").exists()


# -- degenerate layers and masks ------------------------------------------------------------

@pytest.mark.parametrize("rule, sparsity", [(Rank(alpha_ratio=0.01), 0.5), (Significance(), None)])
def test_a_layer_that_never_changes_warns_by_name_and_is_handled_as_documented(rule, sparsity):
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    dict(model.named_parameters())["1.weight"].requires_grad_(False)  # a frozen layer
    frozen = model.state_dict()["1.weight"].clone()
    schedule, sgd = Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1), SGDConfig(batch_size=64)
    theta = pretrain(model, data, schedule, sgd, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = prune_and_retrain(model, data, Causal(rule=rule), sparsity, schedule=schedule, sgd=sgd,
                                   seed=0, pretrained_state=theta)
    degenerate = [w for w in caught if issubclass(w.category, DegenerateLayerWarning)]
    assert len(degenerate) == 1 and "'1.weight'" in str(degenerate[0].message)
    mask = result.masks["1.weight"]
    if sparsity is None:  # every test of the frozen layer is degenerate (p = 1): nothing is significant
        assert not mask.any()
    else:  # the rank rule still prunes its share, ordered by the tie-breaker
        assert mask.mean() == pytest.approx(0.5, abs=0.01)
    weights = dict(model.named_parameters())["1.weight"].detach()
    assert torch.equal(weights, frozen * torch.from_numpy(mask))  # frozen, and pruned where masked


def test_masks_that_do_not_fit_the_model_are_refused_by_name(tmp_path):
    model = MLP(64, (16,), 10)
    params = {"1.weight": dict(model.named_parameters())["1.weight"]}
    with pytest.raises(ValueError, match=r"masks\['1.weight'\] has shape \(16, 60\)"):
        MaskEnforcer(params, {"1.weight": np.ones((16, 60), bool)})
    with pytest.raises(ValueError, match="lack tensors"):
        MaskEnforcer(params, {})
    save_pruned_model(model, {"1.weight": np.ones((16, 64), bool)}, tmp_path / "saved")
    other = MLP(64, (32,), 10)
    with pytest.raises(ValueError, match=r"state_dict.pt.*does not fit"):
        load_pruned_model(other, tmp_path / "saved")
    (tmp_path / "saved" / "state_dict.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match=r"state_dict.pt.*cannot be read"):
        load_pruned_model(model, tmp_path / "saved")


def test_a_trajectory_store_of_another_model_is_refused(tmp_path):
    store = DiskTrajectory(tmp_path / "store", {"w": (3, 2)})
    model = nn.Linear(4, 3, bias=False)
    with pytest.raises(ValueError, match=r"store.*'weight'.*\(3, 4\)"):
        TrajectoryRecorder(model, {"weight": model.weight}, trajectory=store)


# -- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("override, key", [
    ('sgd.lr="fast"', "lr"), ("sgd.lr=-1", "lr"), ("sgd.momentum=1.5", "momentum"),
    ('sgd.weight_decay="x"', "weight_decay"), ('sgd.batch_size="x"', "batch_size"),
    ("sgd.batch_size=0", "batch_size"), ('schedule.n_pre="ten"', "n_pre"), ("schedule.n_iter=0", "n_iter"),
    ("schedule.keep_best=2", "keep_best"), ('seeds="0"', "seeds"), ("seeds=[0.5]", "seeds"),
    ("sparsities=[1.5]", "sparsities"), ('sparsities="x"', "sparsities"),
    ("validation_fraction=2", "validation_fraction"), ('dataset="imagenet"', "dataset"),
    ('model="resnet"', "model"), ("device=3", "device"), ("store_budget_gb=-1", "store_budget_gb"),
    ('store_dtype="int8"', "store_dtype"), ("name=5", "name"), ('dense_reference="yes"', "dense_reference"),
    ('methods=[{"name": "causal", "scope": "everywhere"}]', "scope"), ("schedule.n_psot=1", "n_psot"),
    ("sparsities=[0.5,0.5]", "sparsities"), ("seeds=[0,0]", "seeds"),
])
def test_a_config_value_of_the_wrong_type_or_range_is_refused_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        tiny_config([override])


def test_model_options_the_model_cannot_take_stop_before_any_training(tmp_path):
    with pytest.raises(ValueError, match=r"model_options .*hidden") as caught:
        run_study(tiny_config(['model_options.hidden="big"']), tmp_path / "run", progress=None)
    assert "pre-training seed 0" in " ".join(caught.value.__notes__)
    assert not list((tmp_path / "run" / "checkpoints").rglob("manifest.json"))


# -- a full disk -------------------------------------------------------------------------------

@pytest.mark.parametrize("fail_at", [3, 12, 40, 77])
def test_a_full_disk_mid_run_leaves_a_consistent_folder_that_resumes(tmp_path, reference, monkeypatch,
                                                                     fail_at):
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left"):
        run_study(tiny_config(), tmp_path / "run", progress=None)
    monkeypatch.undo()
    run = tmp_path / "run"
    if fail_at == 3:  # while the folder was made: there is none, and nothing beside it
        assert not run.exists() and list(tmp_path.iterdir()) == []
    else:  # a results.csv there is whole (the write is atomic): the last writes failed
        assert status(run) == "unfinished"
    if (run / "results.csv").exists():
        assert (run / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    assert not list(run.rglob("*.tmp"))  # a failed atomic write leaves no temporary file
    for manifest in run.rglob("manifest.json"):  # every checkpoint there is whole
        json.loads(manifest.read_text())
    run_study(tiny_config(), run, progress=None)
    assert_same_tables(run, reference)


# -- safe loading ---------------------------------------------------------------------------------

def interrupt_the_second_cell(monkeypatch):
    """Make the study's second pruned cell raise KeyboardInterrupt (a Ctrl-C)."""
    import granger_prune.study.runner as runner

    real, calls = runner.prune_and_retrain, {"n": 0}

    def stop_in_the_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "prune_and_retrain", stop_in_the_second)


def killed_after_first_cell(tmp_path, monkeypatch):
    """A run folder whose study stopped in its second cell."""
    interrupt_the_second_cell(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_study(tiny_config(), tmp_path / "run", progress=None)
    monkeypatch.undo()
    return tmp_path / "run"


def test_damaged_edited_and_foreign_checkpoints_are_refused_by_name(tmp_path, reference, monkeypatch):
    run = killed_after_first_cell(tmp_path, monkeypatch)
    pretrained = run / "checkpoints" / "seed-0" / "pretrained"
    state = pretrained / "state_dict.pt"
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match=r"state_dict.pt does not match the SHA-256"):
        run_study(tiny_config(), run, progress=None)
    state.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit edited
    with pytest.raises(CheckpointError, match=r"state_dict.pt does not match the SHA-256"):
        run_study(tiny_config(), run, progress=None)
    state.write_bytes(data)
    manifest = json.loads((pretrained / "manifest.json").read_text())
    foreign = dict(manifest, run_id="0123456789abcdef")
    (pretrained / "manifest.json").write_text(json.dumps(foreign))
    with pytest.raises(CheckpointError, match="belongs to run '0123456789abcdef'.*foreign"):
        run_study(tiny_config(), run, progress=None)
    (pretrained / "manifest.json").write_text(json.dumps(manifest))
    folder = RunFolder.resume(run, tiny_config())
    with pytest.raises(CheckpointError, match=r"state_dict.pt holds tensors of other shapes"):
        folder.load_pretrained(0, MLP(64, (32,), 10))
    with pytest.raises(ValueError, match="being run by another process"):  # this one holds it
        run_study(tiny_config(), run, progress=None)
    folder.release()
    cell = next(run.glob("checkpoints/cells/*/*/result"))
    payload = json.loads((cell / "payload.json").read_text())
    (cell / "payload.json").write_text(json.dumps(dict(payload, seconds=0.0)))  # an edited value
    with pytest.raises(CheckpointError, match=r"payload.json does not match the SHA-256"):
        run_study(tiny_config(), run, progress=None)
    (cell / "payload.json").write_text(json.dumps(payload, indent=1))
    (run / "run.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="run.json is not readable"):
        run_study(tiny_config(), run, progress=None)


def test_a_resume_across_code_changes_or_configurations_is_refused_unless_forced(tmp_path, reference,
                                                                                  monkeypatch):
    run = killed_after_first_cell(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match=r"another configuration: schedule.n_post: 1 there, 2 here"):
        run_study(tiny_config(["schedule.n_post=2"]), run, progress=None)
    identity = run_folder.code_identity()
    monkeypatch.setattr(run_folder, "code_identity", lambda: dict(identity, git_sha="f" * 40))
    with pytest.raises(CheckpointError, match="started by granger_prune .* --force"):
        run_study(tiny_config(), run, progress=None)
    run_study(tiny_config(), run, progress=None, force=True)
    assert_same_tables(run, reference)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["forced_resumes"][0]["git_sha"] == "f" * 40
    with pytest.raises(ValueError, match="finished run"):
        run_study(tiny_config(), run, progress=None)


# -- SIGKILL of a child process -------------------------------------------------------------------

def cli(out, extra=()):
    args = [sys.executable, "-m", "granger_prune.study.cli", "run", "--out", str(out), "--quiet",
            "--device", "cpu"]
    for item in TINY + list(extra):
        args += ["--set", item]
    return args


def attempts_opened(run):
    try:
        return json.loads((run / "run.json").read_text())["attempts"]
    except FileNotFoundError:  # run.json is written whole and renamed: it is absent or complete
        return 0


def wait_until_opened(run, child, attempt):
    """Seconds until ``child`` opens ``run`` as its ``attempt``-th attempt; None if it ends first."""
    tic = time.perf_counter()
    while attempts_opened(run) < attempt:
        if child.poll() is not None:
            return None
        time.sleep(0.01)
    return time.perf_counter() - tic


def test_sigkill_at_random_moments_then_the_same_command_ends_as_an_uninterrupted_run(tmp_path):
    # A kill is timed from the moment the child opens the run folder, not from its start: the
    # interpreter's start and torch's import take half of a tiny run, longer on a cold machine,
    # and a kill before the folder exists tests nothing but a fresh start.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    reference = tmp_path / "reference"
    tic = time.perf_counter()
    child = subprocess.Popen(cli(reference), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    opened = wait_until_opened(reference, child, 1)
    assert child.wait() == 0 and opened is not None
    work = time.perf_counter() - tic - opened
    rng = np.random.default_rng(1)
    run = tmp_path / "run"
    kills = starts = 0
    for _ in range(3):  # up to three kills in a row of the same folder, then a run to the end
        child = subprocess.Popen(cli(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        starts += 1
        assert wait_until_opened(run, child, starts) is not None, "the child ended before it opened the run"
        try:
            child.wait(timeout=float(rng.uniform(0.05, 0.6)) * work)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            kills += 1
        assert not (run / "results.csv").exists() or status(run) == "finished"
        if status(run) == "finished":
            break
    if status(run) != "finished":
        subprocess.run(cli(run), check=True, env=env, capture_output=True)
        starts += 1
    assert kills >= 1
    assert_same_tables(run, reference)
    assert json.loads((run / "run.json").read_text())["attempts"] == starts
    assert pd.read_csv(run / "timings.csv")["seconds"].gt(0).all()


def test_the_cli_continues_an_unfinished_run_by_default_by_out_and_by_resume(tmp_path, reference,
                                                                              monkeypatch, capsys):
    from granger_prune.study.cli import main

    sets = [arg for item in TINY for arg in ("--set", item)]
    run = killed_after_first_cell(tmp_path, monkeypatch)
    assert main(["run", "--resume", str(run), "--quiet"]) == 0  # the folder's own config.json
    assert "continuing" in capsys.readouterr().err
    assert_same_tables(run, reference)
    # without --out: the latest unfinished run of the configuration under runs/
    (tmp_path / "runs").mkdir()
    unfinished = killed_after_first_cell(tmp_path / "runs", monkeypatch)  # (it undoes monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--quiet", *sets]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run"]
    assert status(unfinished) == "finished"
    assert_same_tables(unfinished, reference)
    assert main(["run", "--quiet", "--fresh", *sets]) == 0  # a new folder
    fresh = [p for p in (tmp_path / "runs").iterdir() if p.name != "run"]
    assert len(fresh) == 1 and fresh[0].name.startswith("digits_phase_shift-") and status(fresh[0]) == "finished"
    assert_same_tables(fresh[0], reference)
    assert main(["run", "--resume", str(run), "--fresh"]) == 2
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_two_labels_that_would_share_an_outputs_folder_are_refused():
    from types import SimpleNamespace

    from granger_prune.study.runner import _check_distinct_folders

    config = SimpleNamespace(methods=[SimpleNamespace(label="a(b)"), SimpleNamespace(label="a[b]")],
                             dense_reference=True)
    with pytest.raises(ValueError, match=r"'a\[b\]' and 'a\(b\)' would share the folder models/a_b"):
        _check_distinct_folders(config)


def test_a_folder_another_process_runs_is_neither_continued_nor_taken_for_a_crashed_run(tmp_path,
                                                                                       monkeypatch):
    run = killed_after_first_cell(tmp_path, monkeypatch)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(60)"), str(run / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match="being run by another process"):
            run_study(tiny_config(), run, progress=None)
        assert run_folder.latest_unfinished(tmp_path, tiny_config()) is None
    finally:
        holder.kill()
        holder.wait()
    assert run_folder.latest_unfinished(tmp_path, tiny_config()) == run  # its holder is gone


def test_an_interrupted_cli_run_says_that_the_same_command_continues_it(tmp_path, monkeypatch, capsys):
    from granger_prune.study.cli import main

    interrupt_the_second_cell(monkeypatch)
    sets = [arg for item in TINY for arg in ("--set", item)]
    assert main(["run", "--out", str(tmp_path / "run"), "--quiet", *sets]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "kept unfinished; the same command continues it" in err
    assert status(tmp_path / "run") == "unfinished"


def test_the_recorded_gradient_norm_is_nan_when_no_recorded_tensor_has_a_gradient():
    torch.manual_seed(0)
    model = MLP(4, (8,), 3)
    unused = nn.Linear(4, 4)  # recorded, optimised, never in the loss: its gradient stays None
    optimizer = torch.optim.SGD([*model.parameters(), *unused.parameters()], lr=0.1)
    recorder = TrajectoryRecorder(model, {"unused.weight": unused.weight})
    recorder.step(optimizer, nn.functional.cross_entropy, torch.randn(16, 4), torch.randint(0, 3, (16,)))
    assert unused.weight.grad is None
    assert np.isnan(recorder.trajectory.grad_norms()).all()
    assert not recorder.trajectory.deltas("unused.weight").any()
