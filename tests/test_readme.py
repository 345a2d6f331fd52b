"""The README's example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    result = namespace["result"]
    assert abs(namespace["sparsity_table"](result.masks).iloc[-1]["sparsity"] - 0.9) < 1e-3


def test_ci_runs_the_readme_test_command():
    text = README.read_text()
    command = text.split("<!-- test-command -->")[1].split("```bash\n")[1].split("\n")[0]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest" in command and "test-command" in ci
