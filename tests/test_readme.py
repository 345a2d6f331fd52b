"""The README's example runs as written."""

import re
import subprocess
import warnings
from pathlib import Path

import numpy as np

from granger_prune.exceptions import GrangerPruneWarning

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    result = namespace["result"]
    assert abs(namespace["sparsity_table"](result.masks).iloc[-1]["sparsity"] - 0.9) < 1e-3


def test_readme_significance_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)  # digits pixels that never vary
        for block in (blocks[0], *[b for b in blocks if "StreamingGrangerTests" in b]):
            exec(compile(block, "README.md", "exec"), namespace)
    tests, streamed, result = namespace["tests"], namespace["streamed"], namespace["result"]
    assert tests.n_tests == 64 * 128 and np.all(tests.n_columns == 3)
    assert np.all(tests.df_num[np.isfinite(tests.fvalue)] >= 1) and np.all(tests.df_num <= 3)
    assert streamed.n_tests == tests.n_tests and streamed.n_samples == 89
    kept = sum(int(m.sum()) for m in result.masks.values())
    assert kept == int(result.diagnostics["n_significant"].sum()) > 0


def test_readme_robust_tests_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)  # the diagnostics' warnings
        for block in (blocks[0], *[b for b in blocks if "StreamingGrangerTests" in b],
                      *[b for b in blocks if "granger_tests" in b]):
            exec(compile(block, "README.md", "exec"), namespace)
    hac, scaled, stable = namespace["hac"], namespace["scaled"], namespace["stable"]
    assert hac.inference == "hac" and hac.lags.shape == (hac.n_tests,)
    assert scaled.inference == "prewhiten" and scaled.n_factors == 1 and scaled.ar_order >= 0
    assert (stable.diagnostics["expected_false_bound"] <= 1.0).all()


def test_ci_runs_the_readme_test_command():
    text = README.read_text()
    command = text.split("<!-- test-command -->")[1].split("```bash\n")[1].split("\n")[0]
    assert "python -m pytest" in command
    ci = README.parent / ".ci" / "run"
    awk = re.search(r"cmd=\$\(awk '([^']+)' README.md\)", ci.read_text()).group(1)
    extracted = subprocess.run(["awk", awk, str(README)], capture_output=True, text=True, check=True)
    assert extracted.stdout.strip() == command


def test_readme_structured_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "shrink_sequential" in b]
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    result, model, smaller, x = (namespace[k] for k in ("result", "model", "smaller", "x"))
    assert [int(result.masks[f"{c}.bias"].sum()) for c in ("0", "3", "8")] == [8, 16, 32]
    assert smaller[0].out_channels == 8 and smaller[3].out_channels == 16
    assert (smaller(x) - model(x)).abs().max() < 1e-5


def test_readme_criteria_labels_and_method_table_are_what_the_code_gives():
    import tomllib

    from granger_prune import Causal, DesignSpec, Rank, criterion_from_dict

    text = README.read_text()
    block = re.search(r"```python\n(from granger_prune import Causal, DesignSpec.*?)```", text, flags=re.S).group(1)
    namespace = {}
    exec(compile(block.split("\n", 1)[0], "README.md", "exec"), namespace)
    lines = block.split("\n")[1:]
    checked = 0
    for i, line in enumerate(lines):
        expression, _, comment = line.partition("#")
        if ".label" not in expression:
            continue
        expected = comment.strip() or lines[i + 1].strip().lstrip("#").strip()
        assert repr(eval(expression, namespace)) == expected, line
        checked += 1
    assert checked == 3
    table = re.search(r"```toml\n(\[\[methods\]\].*?)```", text, flags=re.S).group(1)
    (spec,) = tomllib.loads(table)["methods"]
    assert criterion_from_dict(spec) == Causal(design=DesignSpec(features="momentum", lags=2),
                                               rule=Rank(alpha_ratio=0.01))


def test_readme_training_table_is_a_valid_study_section():
    import tomllib

    from granger_prune import OptimizerSpec, TrainingConfig

    text = README.read_text()
    table = re.search(r"```toml\n(\[training\].*?)```", text, flags=re.S).group(1)
    config = TrainingConfig.from_dict(tomllib.loads(table)["training"])
    assert config.phase("prune") == OptimizerSpec(lr=0.1, schedule="cosine", final_lr=0.001)
    assert config.phase("post") == OptimizerSpec("adamw", lr=1e-3, weight_decay=0.01)


def test_readme_prunes_a_user_defined_model_on_dataloaders():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "class Regressor(nn.Module)" in b]
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    result, y = namespace["result"], namespace["y"]
    assert abs(result.sparsity - 0.8) < 2e-3
    assert result.metric_name == "mse" and 0 < result.metric < 0.5 * float(y[1000:].var())
    assert set(result.masks) == {"hidden.weight", "out.weight"}


def test_readme_disk_store_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        for block in (blocks[0], *[b for b in blocks if "DiskTrajectory" in b]):
            exec(compile(block, "README.md", "exec"), namespace)
    X, design = namespace["X"], namespace["design"]
    assert X.shape == (namespace["store"].n_steps, 64 * 128)
    np.testing.assert_array_equal(X, namespace["store"].deltas("1.weight"))
    assert design.X.shape[1] == 64 * 128 and design.X.dtype == np.float32
