"""Every command in README.md and docs/ works as written, or is checked to exist: the docs cannot
drift from the code.

A command is a line of a ```bash block, or an inline code span that starts like one
(``python -m ...``, ``.venv/bin/dg ...``, ``make ...``). Each is checked by its program:

- ``python -m M``: M imports, a project module has a ``main`` and a ``__main__`` guard, and one
  that parses arguments is run with ``--help``, whose text must list every option the docs use;
  ``python -c`` is run.
- ``dg`` / ``dagster`` / ``dagster-daemon``: the subcommand exists, is not superseded (Dagster's
  own marker: ``dagster asset materialize``, ``dagster dev``... warn and point to ``dg``), and
  the options parse; assets, jobs and partitions named exist in the definitions. In a ```bash
  block they are called by the venv's path (``.venv/bin/dg``), since nothing puts them on PATH.
  ``dg launch`` is run for real by the last tests, against a throw-away lake and instance.
- ``make T``: T is a target of the Makefile; ``verify_bundle``: the installed script's --help.
- ``pip install``: the extras and pinned versions named are the project's.

What cannot be checked is in ``NOT_CHECKED`` with the reason. The names of jobs, sensors,
schedules, assets, groups and checks that the prose gives (``job `retention```, the operations
table's "Dagster object" column, any ``*_sensor``/``*_schedule``) must exist in the definitions,
and every TELEMETRY_ variable the docs name must be read by the code.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import click
import dagster as dg
import pytest
import yaml
from dagster._annotations import is_superseded

from pipelines.lib.lake.paths import PROJECT_ROOT
from tests.conftest import load_defs

DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]
BIN = Path(sys.executable).parent
SHELLS = ("bash", "sh", "shell", "console")
# An inline code span is a command when it starts with one of these (after VAR=value pairs).
COMMAND_START = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*"
    r"(?:python3?|\.venv/bin/\S+|make|dagster(?:-daemon)?|dg|pip|verify_bundle|~/\S+)(?:\s|$)"
)
DAGSTER_CLIS = ("dg", "dagster", "dagster-daemon")

# Commands no test can check, each with the reason. Keyed by the command as the docs write it
# (placeholders <x> become X_x): a new unchecked command fails until it is listed here.
NOT_CHECKED = {
    "~/duckdb-cli/bin/duckdb -readonly data/lake.duckdb": (
        "the analysts' own shell, in a venv of their home made by the line above; the test extra "
        "installs the same pinned duckdb-cli (checked below) and tests/catalog/test_catalog.py "
        "runs the README's queries in it"
    ),
}


@dataclass
class Command:
    where: str  # file:line
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    fenced: bool = True
    text: str = ""  # the simple command as written
    block: str = ""  # the whole ```bash block (or the span) it came from


def _placeholders(text: str) -> str:
    return re.sub(r"<([A-Za-z][\w -]*)>", lambda m: "X_" + re.sub(r"\W", "_", m.group(1)), text)


def _simple_commands(line: str) -> Iterator[tuple[list[str], dict[str, str], str]]:
    """The simple commands of one shell line: split at && || ; |, redirections dropped, leading
    VAR=value pairs taken as the environment."""
    lexer = shlex.shlex(_placeholders(line), posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    words: list[str] = []
    for token in [*tokens, ";"]:
        if token in ("&&", "||", ";", "|", "&"):
            env = {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                name, _, value = words.pop(0).partition("=")
                env[name] = value
            if words:
                yield words, env, " ".join(words)
            words = []
        elif token in (">", ">>", "<", "2>"):
            words.append(token)  # its target follows; both dropped below
        elif words and words[-1] in (">", ">>", "<", "2>"):
            words.pop()
        else:
            words.append(token)


def _logical_lines(block: str, first: int) -> Iterator[tuple[int, str]]:
    """The block's lines with backslash continuations joined, each with its first line's number."""
    pending, start = "", first
    for number, line in enumerate(block.splitlines(), start=first):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@cache
def commands() -> list[Command]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(PROJECT_ROOT))
        fences = list(re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M))
        for fence in fences:
            if fence.group(1) not in SHELLS:
                continue
            block = fence.group(2)
            for number, line in _logical_lines(block, _line_of(text, fence.start(2))):
                for argv, env, simple in _simple_commands(line):
                    found.append(Command(f"{name}:{number}", argv, env, True, simple, block))
        prose = text
        for fence in fences:  # blank the fences out, keeping offsets (line numbers)
            prose = (
                prose[: fence.start()] + re.sub(r"[^\n]", " ", fence.group()) + prose[fence.end() :]
            )
        for span in re.finditer(r"`([^`\n]+)`", prose):
            if COMMAND_START.match(span.group(1)):
                for argv, env, simple in _simple_commands(span.group(1)):
                    where = f"{name}:{_line_of(text, span.start())}"
                    found.append(Command(where, argv, env, False, simple, span.group(1)))
    return found


@cache
def pyproject() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@cache
def definitions() -> dg.Definitions:
    """The code location as the docs' commands load it: in the environment they assume (no
    TELEMETRY_ setting), whatever another test of this process set when it loaded it."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("TELEMETRY_")}
    try:
        return load_defs()
    finally:
        os.environ.update(saved)


@cache
def repository():
    return definitions().get_repository_def()


# --- the programs ---------------------------------------------------------------------------------


def _check_python(command: Command, args: list[str]) -> None:
    if args[:1] == ["-c"]:
        done = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT
        )
        assert done.returncode == 0, f"{command.where}: {command.text}: {done.stderr}"
        return
    assert args[:1] == ["-m"], f"{command.where}: {command.text}: only -m and -c are checked"
    module, rest = args[1], args[2:]
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{command.where}: no module {module} ({command.text})"
    if module.split(".")[0] not in ("pipelines", "bench"):
        return  # venv, pip, pytest: importable is all we ask of them
    source = Path(spec.origin).read_text(encoding="utf-8")
    assert "def main(" in source and '__name__ == "__main__"' in source, (
        f"{command.where}: `python -m {module}` runs nothing: {spec.origin} has no main()"
    )
    if "ArgumentParser(" not in source:
        return  # no --help to ask for (running it would run it)
    code, usage = _help(module)
    assert code == 0, f"{command.where}: python -m {module} --help: {usage}"
    for option in (a.split("=")[0] for a in rest if a.startswith("--")):
        listed = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", usage)
        assert listed, f"{command.where}: {module} has no option {option}"
    # A first positional argument that is a subcommand (argparse lists them as {a,b}).
    choices = re.search(r"\{([\w,-]+)\}", usage)
    if choices and rest and not rest[0].startswith("-"):
        assert rest[0] in choices.group(1).split(","), f"{command.where}: {module} {rest[0]}?"


@cache
def _help(module: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    return done.returncode, done.stdout + done.stderr


def _click_root(program: str) -> click.Command:
    [script] = [ep for ep in entry_points(group="console_scripts") if ep.name == program]
    module = importlib.import_module(script.module)
    root = getattr(module, "cli", None)
    assert isinstance(root, click.Command), f"{program}: no click group in {script.module}"
    return root


def _check_dagster_cli(command: Command, program: str, args: list[str]) -> None:
    if command.fenced:
        assert command.argv[0] == f".venv/bin/{program}", (
            f"{command.where}: call {program} by the venv's path, .venv/bin/{program}: the "
            "install does not put it on PATH"
        )
    assert (BIN / program).exists(), f"{command.where}: {program} is not installed in the venv"
    if not args:
        return  # the program named in prose ("`dagster-daemon` and ...")
    # A file an earlier line of the block writes (printf ... > f) does not exist yet.
    written = set(re.findall(r">\s*(\S+)", _placeholders(command.block)))
    args = [os.devnull if a in written else a for a in args]
    cmd = _click_root(program)
    ctx = click.Context(cmd, info_name=program)
    path = [program]
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"{command.where}: `{' '.join(path)}` has no command {args[0]}"
        path.append(args.pop(0))
        cmd, ctx = sub, click.Context(sub, parent=ctx, info_name=path[-1])
    assert not is_superseded(cmd.callback), (
        f"{command.where}: `{' '.join(path)}` is superseded (it prints a warning naming its "
        "replacement): use the command Dagster recommends"
    )
    parsed = cmd.make_context(path[-1], list(args), parent=ctx.parent, resilient_parsing=False)
    if path[:2] == ["dg", "launch"] and (args or command.fenced):
        _check_launch(command, parsed.params)


def _check_launch(command: Command, params: dict) -> None:
    repo = repository()
    if params.get("job"):
        assert params["job"] in repo.job_names, f"{command.where}: no job {params['job']}"
        return
    assert params.get("assets"), f"{command.where}: dg launch needs --assets or --job"
    graph = repo.asset_graph
    for name in params["assets"].split(","):
        key = dg.AssetKey.from_user_string(name.strip())
        assert graph.has(key), f"{command.where}: no asset {name}"
        if params.get("partition"):
            partitions = graph.get(key).partitions_def
            assert partitions is not None and partitions.has_partition_key(params["partition"]), (
                f"{command.where}: asset {name} has no partition {params['partition']}"
            )


def _check_make(command: Command, args: list[str]) -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w.-]*):", makefile, re.M))
    assert args, f"{command.where}: `make` alone"
    for arg in args:
        assert not arg.startswith("-"), (
            f"{command.where}: `{command.text}`: {arg} is not an option of make"
        )
        assert "=" in arg or arg in targets, f"{command.where}: the Makefile has no target {arg}"


def _check_pip(command: Command, args: list[str]) -> None:
    assert args[:1] == ["install"], f"{command.where}: only pip install is checked"
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    pins = [d for deps in [project["dependencies"], *extras.values()] for d in deps]
    for arg in args[1:]:
        if arg in ("-q", "-e"):
            continue
        if arg.startswith("."):
            for extra in re.findall(r"\[([\w,-]+)\]", arg)[:1]:
                for name in extra.split(","):
                    assert name in extras, f"{command.where}: the project has no extra [{name}]"
            continue
        assert arg in pins, f"{command.where}: {arg} is not what pyproject.toml pins ({pins})"


def _check_verify_bundle(command: Command) -> None:
    scripts = pyproject()["project"]["scripts"]
    assert scripts.get("verify_bundle") == "pipelines.verify_bundle:main"
    done = subprocess.run(
        [str(BIN / "verify_bundle"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{command.where}: verify_bundle --help: {done.stderr}"


def check(command: Command) -> None:
    if command.text in NOT_CHECKED:
        return
    program, args = command.argv[0], list(command.argv[1:])
    name = program.removeprefix(".venv/bin/")
    if name in ("python", "python3"):
        _check_python(command, args)
    elif name in DAGSTER_CLIS:
        _check_dagster_cli(command, name, args)
    elif name == "make":
        _check_make(command, args)
    elif name == "pip" or program.endswith("/bin/pip"):
        _check_pip(command, args)
    elif name == "verify_bundle":
        _check_verify_bundle(command)
    elif name == "printf":
        pass  # a shell builtin writing a file the next command reads (checked in its test)
    else:
        pytest.fail(
            f"{command.where}: `{command.text}` is not checked: teach "
            "tests/docs/test_docs_commands.py to check it, or list it in NOT_CHECKED with the "
            "reason"
        )


@pytest.mark.parametrize("command", commands(), ids=lambda c: f"{c.where} {c.text}"[:90])
def test_command(command: Command) -> None:
    check(command)


def test_the_docs_have_commands():
    # The extraction itself: the README's install line and a dg launch at least.
    texts = [c.text for c in commands()]
    assert ".venv/bin/python -m pipelines.demo" in texts
    assert any(t.startswith(".venv/bin/dg launch") for t in texts)
    assert sum(c.fenced for c in commands()) > 10


def test_not_checked_lists_only_commands_the_docs_have():
    assert set(NOT_CHECKED) <= {c.text for c in commands()}


def test_the_readme_test_command_is_what_ci_runs():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    [line] = [x for x in readme.splitlines() if "python -m pytest" in x and x.startswith("python3")]
    assert line in (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_analysts_shell_is_the_version_the_tests_run():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    [pin] = set(re.findall(r"duckdb-cli==[\d.]+", readme))
    assert pin in pyproject()["project"]["optional-dependencies"]["test"]


# --- names --------------------------------------------------------------------------------------


@cache
def names() -> dict[str, set[str]]:
    repo = repository()
    graph = repo.asset_graph
    keys = graph.get_all_asset_keys()
    return {
        "job": set(repo.job_names),
        "sensor": {s.name for s in repo.sensor_defs},
        "schedule": {s.name for s in repo.schedule_defs},
        "asset": {k.to_user_string() for k in keys},
        "group": {graph.get(k).group_name for k in keys},
        # A check by its name, or the op computing several (a multi-asset check: slo_checks).
        "check": {k.name for k in graph.asset_check_keys}
        | {c.node_def.name for c in repo.asset_checks_defs_by_key.values()},
        "resource": set(definitions().resources or {}),
    }


def _named_in_docs() -> Iterator[tuple[str, str, str]]:
    """(where, kind, name) for every name the prose gives a kind."""
    kinds = "jobs?|sensors?|schedules?|assets?|groups?|checks?"
    pattern = re.compile(rf"\b({kinds}) `(\w+)`|`(\w+)` ({kinds})\b")
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(PROJECT_ROOT)
        for m in pattern.finditer(text):
            kind = (m.group(1) or m.group(4)).removesuffix("s")
            yield f"{name}:{_line_of(text, m.start())}", kind, m.group(2) or m.group(3)
        for m in re.finditer(r"`(\w+_(sensor|schedule))`", text):
            yield f"{name}:{_line_of(text, m.start())}", m.group(2), m.group(1)
        yield from _table_column(text, str(name), "Dagster object")


def _table_column(text: str, name: str, title: str) -> Iterator[tuple[str, str, str]]:
    """Every `name` in the column ``title`` of a Markdown table: a Dagster object of any kind."""
    lines = text.splitlines()
    for n, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or title not in cells:
            continue
        column = cells.index(title)
        for m, row in enumerate(lines[n + 2 :], start=n + 3):
            if not row.startswith("|"):
                break
            cell = [c.strip() for c in row.strip().strip("|").split("|")][column]
            for word in re.findall(r"`(\w+)`", cell):
                yield f"{name}:{m}", "any", word


def test_names_in_the_docs_exist_in_the_definitions():
    known = names()
    every = set().union(*known.values())
    missing = [
        f"{where}: {kind} {name}"
        for where, kind, name in _named_in_docs()
        if name not in (every if kind == "any" else known[kind])
    ]
    assert missing == [], "named in the docs, absent from pipelines.definitions:\n" + "\n".join(
        missing
    )


def test_variables_in_the_docs_are_read():
    code = "\n".join(
        p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "pipelines").rglob("*.py")
    )
    read = set(re.findall(r"[\"'](TELEMETRY_[A-Z0-9_]+)[\"']", code))
    instance = "\n".join(
        (PROJECT_ROOT / f).read_text(encoding="utf-8")
        for f in ("dagster.yaml", "deploy/dagster.yaml")
    )
    from_instance = set(re.findall(r"\{env: (DAGSTER_[A-Z0-9_]+)\}", instance)) | {"DAGSTER_HOME"}
    unread = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for variable in set(
            re.findall(r"\b(TELEMETRY_[A-Z0-9_]*[A-Z0-9]|DAGSTER_[A-Z0-9_]*[A-Z0-9])\b", text)
        ):
            if variable not in (read if variable.startswith("TELEMETRY_") else from_instance):
                unread.append(f"{path.relative_to(PROJECT_ROOT)}: {variable}")
    assert unread == [], "the docs name variables nothing reads:\n" + "\n".join(sorted(unread))


# --- run for real -------------------------------------------------------------------------------


def _launch_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "lake").mkdir()
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update(
        DAGSTER_HOME=str(tmp_path / "home"),
        TELEMETRY_LAKE_ROOT=str(tmp_path / "lake"),
        TELEMETRY_CATALOG=str(tmp_path / "lake.duckdb"),
        TELEMETRY_EXECUTOR="in_process",
    )
    return env


def _run_documented(command: Command, env: dict[str, str], **replace: str) -> str:
    argv = [str(BIN / command.argv[0].removeprefix(".venv/bin/")), *command.argv[1:]]
    argv = [replace.get(a, a) for a in argv]
    done = subprocess.run(
        argv, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command.where}: {command.text}\n{output[-3000:]}"
    assert "SupersessionWarning" not in output and "DeprecationWarning" not in output, output
    return output


def _documented(prefix: str) -> Command:
    return next(c for c in commands() if c.fenced and c.text.startswith(prefix))


@pytest.mark.slow
def test_the_readme_catalog_command_runs(tmp_path):
    """README, "For analysts": `dg launch --assets catalog` builds the catalog files."""
    command = _documented(".venv/bin/dg launch --assets catalog")
    assert command.env == {"DAGSTER_HOME": "$PWD"}
    output = _run_documented(command, _launch_env(tmp_path))
    assert "RUN_SUCCESS" in output
    assert (tmp_path / "lake.duckdb").is_file()


@pytest.mark.slow
def test_the_retention_commands_run(tmp_path):
    """docs/contracts/pii_retention.md, "Running it": the config the printf line writes is the
    retention job's, and `dg launch --job retention --config` runs with it."""
    command = _documented(".venv/bin/dg launch --job retention --config")
    config_path = command.argv[-1]
    [printf] = [c for c in commands() if c.argv[0] == "printf" and c.block == command.block]
    config = tmp_path / "retention.yaml"
    config.write_text(printf.argv[1].encode().decode("unicode_escape"), encoding="utf-8")
    job = repository().get_job("retention")
    assert dg.validate_run_config(job, yaml.safe_load(config.read_text(encoding="utf-8")))
    output = _run_documented(command, _launch_env(tmp_path), **{config_path: str(config)})
    assert "RUN_SUCCESS" in output
    assert list((tmp_path / "lake" / "ops" / "retention").rglob("*.parquet"))
