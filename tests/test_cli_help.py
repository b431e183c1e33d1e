"""Every command and option of the click tree has help text, and every command an Examples
section; flows are numbered from 1; the two ways to an HTML report say which is the documented one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dr_inspect.cli import main


def walk(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()
         ) -> Iterator[tuple[str, click.Command]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{' '.join(path + (name,))}: listed but not found"
        yield " ".join(path + (name,)), command
        if isinstance(command, click.Group):
            yield from walk(command, ctx, path + (name,))


def all_commands() -> list[tuple[str, click.Command]]:
    with click.Context(main) as ctx:
        return list(walk(main, ctx))


def test_tree_is_complete():
    names = {name for name, _ in all_commands()}
    for expected in ("verify", "ladder", "report", "diff", "lab up", "lab exec", "doctor", "watch"):
        assert expected in names


@pytest.mark.parametrize("path, command", all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_help_text_and_examples(path, command):
    assert (command.help or "").strip(), f"{path}: no help text"
    assert (command.short_help or command.help or "").strip()
    missing = [p.opts[0] for p in command.params
               if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing, f"dr-inspect {path}: options without help: {', '.join(missing)}"
    result = CliRunner().invoke(main, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output, f"dr-inspect {path} --help has no Examples section"
    examples = result.output.split("Examples:", 1)[1]
    assert "dr-inspect " + path.split()[0] in examples
    # the help explains its terms: "the seed" is never used without saying what it is
    assert "the seed's" not in result.output or "tutorial" in result.output


def test_top_level_help_explains_the_seed():
    out = CliRunner().invoke(main, ["--help"]).output
    assert "seed" in out and "tutorial" in out and "br_e" in out and "br_lvs" in out


def test_ladder_flow_zero_is_refused():
    result = CliRunner().invoke(main, ["ladder", "captures/seed-ipvs", "--flow", "0"])
    assert result.exit_code == 2
    assert "0 is not in the range x>=1" in result.output


def test_one_documented_way_to_an_html_report():
    verify_help = CliRunner().invoke(main, ["verify", "--help"]).output
    report_help = CliRunner().invoke(main, ["report", "--help"]).output
    assert "same as `dr-inspect report --html" in " ".join(verify_help.split())
    assert "documented way" in " ".join(report_help.split())


def test_shell_completion_works_as_the_readme_says():
    import os
    import subprocess
    import sys

    from conftest import ROOT
    readme = (ROOT / "README.md").read_text()
    assert 'eval "$(_DR_INSPECT_COMPLETE=bash_source dr-inspect)"' in readme
    env = dict(os.environ, PYTHONPATH=str(ROOT), _DR_INSPECT_COMPLETE="bash_complete",
               COMP_WORDS="dr-inspect lab up --fault rs-a", COMP_CWORD="4")
    out = subprocess.run([sys.executable, "-c", "from dr_inspect.cli import main; main(prog_name='dr-inspect')"],
                         env=env, capture_output=True, text=True).stdout
    assert out.split() == ["plain,rs-answers-arp", "plain,rs-arp-announce"]
    script = subprocess.run([sys.executable, "-c", "from dr_inspect.cli import main; main(prog_name='dr-inspect')"],
                            env=dict(env, _DR_INSPECT_COMPLETE="bash_source"),
                            capture_output=True, text=True).stdout
    assert "complete -o nosort -F" in script


def test_readme_shows_the_new_commands():
    from conftest import ROOT
    readme = (ROOT / "README.md").read_text()
    for text in ("dr-inspect diff old.json new.json", "ladder CAPTURE_SET --list",
                 "--evidence-pcap why.pcapng", "watch --metrics", "lab exec director",
                 "--fault rs-answers-arp@rs2"):
        assert text in readme, text


def test_documented_completion_lines_work_with_the_installed_command():
    """Each shell line of the README's "Shell completion" section, run as written with the
    installed console script: bash's completes an option (the filters included), zsh's and
    fish's print their shell's script."""
    import os
    import re
    import shutil
    import subprocess
    import sys

    from conftest import ROOT, require
    section = (ROOT / "README.md").read_text().split("## Shell completion", 1)[1]
    lines = {m.group(2): m.group(1).split("#")[0].strip() for m in
             re.finditer(r"^    (.*_DR_INSPECT_COMPLETE=(bash|zsh|fish)_source dr-inspect.*)$",
                         section, re.M)}
    assert set(lines) == {"bash", "zsh", "fish"}, lines
    bindir = str(Path(sys.executable).parent)
    script = shutil.which("dr-inspect", path=os.pathsep.join([bindir, os.environ["PATH"]]))
    require(script is not None, "the dr-inspect console script is not installed (pip install -e .)")
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(script).parent), os.environ["PATH"]]))

    def bash(command: str) -> str:
        done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert lines["bash"] == 'eval "$(_DR_INSPECT_COMPLETE=bash_source dr-inspect)"'
    completed = bash(lines["bash"] + "; complete -p dr-inspect; COMP_WORDS=(dr-inspect verify "
                     "--cl); COMP_CWORD=2; _dr_inspect_completion dr-inspect; "
                     'printf "%s\\n" "${COMPREPLY[@]}"').splitlines()
    assert completed == ["complete -o nosort -F _dr_inspect_completion dr-inspect", "--client"]
    # zsh and fish need not be installed: the command inside their line prints the script
    zsh = bash(re.search(r"\$\((.*)\)", lines["zsh"]).group(1))
    assert zsh.startswith("#compdef dr-inspect") and "_DR_INSPECT_COMPLETE=zsh_complete" in zsh
    fish = bash(lines["fish"].split("|")[0])
    assert "_DR_INSPECT_COMPLETE=fish_complete" in fish and "complete --no-files --command dr-inspect" in fish
