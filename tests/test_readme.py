"""The README's Quickstart is exactly two commands, and CI runs the second one."""

import re

from seamfix_testing import REPO


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.strip()]


def test_quickstart_has_two_commands_and_ci_runs_the_test_one():
    install_and_run, test = quickstart_commands()
    assert install_and_run.startswith("pip install . && seamfix lint") and "fixtures/demo" in install_and_run
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci


def test_readme_lists_every_rule():
    from seamfix.lint_rules import RULES

    readme = (REPO / "README.md").read_text()
    for code, rule in RULES.items():
        assert f"| {code} | {rule.name} |" in readme
