"""The README's library examples run as doctests, and its set-up commands match .ci/run."""

import doctest
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_doctests_pass():
    result = doctest.testfile(
        str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted >= 10  # the library and checkpoint examples were found and run
    assert result.failed == 0


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick, re.S)
    assert len(commands) == 2, "Quick start must give exactly two commands: the main job and the tests"
    main_job, tests = commands
    assert "esopt tune cluster/configs/" in main_job
    config = main_job.split("esopt tune ", 1)[1].split()[0]
    assert (ROOT / config).is_file()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests.strip() in ci.splitlines()
