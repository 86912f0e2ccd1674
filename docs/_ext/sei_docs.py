"""Parts of the sei documentation generated from the code and from recorded results, so that nothing in them is
copied by hand. Everything is written as Markdown (the pages are MyST) when the build starts:

- ``_generated/cli.md``: the command-line reference, from the parser ``sei`` itself builds (``sei.cli.build_parser``);
- ``_generated/faults.md``: the fault table, by running the fault cases the tests run (``tests/fault_cases.py``)
  and recording what each command answered;
- ``benchmarks/<name>.md``: one page per benchmark script, with the tables it recorded in
  ``benchmarks/results/<name>.json`` (and its variants, such as ``<name>_cuda.json``);
- the ``sei-registry`` directive: the table of a registry (``operators``, ``methods``, ``backbones``);
- the ``sei-benchmark-index`` directive: every benchmark, what it measures, and whether results are recorded.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
# scripts beside the benchmarks that measure nothing: helpers, and the training of the shipped networks
NOT_BENCHMARKS = ("recording", "commands", "pretrain")
GENERATED = "_generated"


def _escape_punctuation(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|#{}$])", r"\\\1", text)


def escape(text: object) -> str:
    """Text as one line of Markdown prose: Markdown's punctuation escaped, whitespace collapsed."""
    return _escape_punctuation(" ".join(str(text).split()))


def prose(text: str) -> str:
    """A docstring's reStructuredText sentence as Markdown: ````code```` as code, the rest escaped (the spaces
    around the code kept)."""
    parts = re.split(r"``(.+?)``", " ".join(str(text).split()))
    return "".join(f"`{part}`" if index % 2 else _escape_punctuation(part) for index, part in enumerate(parts))


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(value)


def table(title: str, columns: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown pipe table, its title in bold above it."""
    out = [f"**{escape(title)}**", ""] if title else []
    out.append("| " + " | ".join(escape(c) for c in columns) + " |")
    out.append("|" + "---|" * len(columns))
    out += ["| " + " | ".join(cell(value) or " " for value in row) + " |" for row in rows]
    return out + [""]


# -- the command line ------------------------------------------------------------------------------------------
def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = ""
    if action.nargs != 0:
        metavar = " " + argparse.HelpFormatter("sei")._format_args(action, action.dest.upper().replace(".", "_"))
    return ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)


def cli_reference() -> str:
    """Every ``sei`` subcommand: what it does, its usage, its options and examples, from the parser."""
    from sei.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in subparsers._choices_actions}
    out: list[str] = []
    for name, command in subparsers.choices.items():
        out += [f"## sei {name}", "", escape(helps.get(name, "")), ""]
        if command.description:
            out += ["```text", command.description.strip(), "```", ""]
        usage = " ".join(command.format_usage().removeprefix("usage: ").split())
        out += ["```text", usage, "```", ""]
        formatter = command._get_formatter()
        for group in command._action_groups:
            actions = [a for a in group._group_actions
                       if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
            if not actions:
                continue
            out += [f"**{escape(group.title)}**", ""]
            for action in actions:
                text = formatter._expand_help(action) if action.help else "(no description)"
                if action.choices:
                    text += f" (one of: {', '.join(map(str, action.choices))})"
                out += [_flags(action), f": {escape(text)}", ""]
        if command.epilog:
            out += ["```text", command.epilog.strip(), "```", ""]
    return "\n".join(out)


# -- benchmarks ------------------------------------------------------------------------------------------------
def benchmark_scripts() -> dict[str, str]:
    """Benchmark name -> the first paragraph of its script's docstring."""
    scripts = {}
    for path in sorted(BENCHMARKS.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if doc and path.stem not in NOT_BENCHMARKS:
            scripts[path.stem] = " ".join(doc.split("\n\n")[0].split())
    return scripts


def recorded_results(name: str) -> list[Path]:
    """The result files of a benchmark: ``<name>.json`` and its variants (``<name>_cuda.json``, ...)."""
    return sorted(RESULTS.glob(f"{name}.json")) + sorted(RESULTS.glob(f"{name}_*.json"))


def benchmark_page(name: str, summary: str) -> str:
    """A benchmark's page: what it measures, then every recorded file's tables with where and how it measured."""
    out = [f"# {name}", "", prose(summary), ""]
    files = recorded_results(name)
    if not files:
        out += [f"No results are recorded in this tree yet: `python benchmarks/{name}.py` measures them and writes "
                f"`benchmarks/results/{name}.json`.", ""]
    for path in files:
        recording = json.loads(path.read_text())
        where = ", ".join(f"{key} {value}" for key, value in recording.get("recorded", {}).items()
                          if value not in (None, ""))
        out += [f"`{path.relative_to(ROOT)}`" + (f": {escape(where)}" if where else ""), ""]
        if recording.get("command"):
            out += ["```sh", recording["command"], "```", ""]
        if not recording.get("tables"):
            out += ["This file records no tables (it predates the recording format); its values are in the file.",
                    ""]
        for entry in recording.get("tables", []):
            out += table(entry.get("title", ""), entry["columns"], entry["rows"])
            if entry.get("notes"):
                out += [escape(entry["notes"]), ""]
    return "\n".join(out)


# -- directives ------------------------------------------------------------------------------------------------
class _Markdown(SphinxDirective):
    """A directive whose body is Markdown generated by :meth:`lines`, parsed as the page is."""

    def lines(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(self.lines(), source=f"<{self.name}>"), self.content_offset, container)
        return container.children


class RegistryTable(_Markdown):
    """The entries of one of sei's registries."""

    required_arguments = 1

    def lines(self) -> list[str]:
        which = self.arguments[0]
        if which == "operators":
            from sei.physics.registry import OPERATORS

            return table("Operators (sei.physics.registry)",
                         ["kind", "task", "spec fields", "what", "baselines", "periodic", "boundary models"],
                         [[k.name, k.task, ", ".join(sorted(k.fields)), k.description, ", ".join(k.baselines),
                           k.periodic, ", ".join(k.boundaries)] for k in OPERATORS.values()])
        if which == "methods":
            from sei.losses.registry import METHOD_REGISTRY

            return table("Training methods (sei.losses.registry)", ["name", "aliases", "loss", "needs clean images"],
                         [[e.name, ", ".join(e.aliases), e.description, e.needs_ground_truth]
                          for e in METHOD_REGISTRY])
        if which == "backbones":
            from sei.models.registry import BACKBONES

            return table("Backbones (sei.models.registry)",
                         ["preset", "family", "learning rate", "checkpointing", "runs the operator", "what"],
                         [[name, p.family.name, "the paper's, by task" if p.lr is None else p.lr, p.checkpointing,
                           p.needs_physics, p.description] for name, p in BACKBONES.items()])
        raise self.error(f"unknown registry {which!r}; use operators, methods or backbones")


class BenchmarkIndex(_Markdown):
    """Every benchmark script: what it measures, and a link to its page."""

    def lines(self) -> list[str]:
        return [f"- {{doc}}`{name}` ({'results recorded' if recorded_results(name) else 'no results recorded yet'}):"
                f" {prose(summary)}" for name, summary in benchmark_scripts().items()] + [""]


# -- the fault table ---------------------------------------------------------------------------------------------
def fault_table() -> str:
    """Each fault case of ``tests/fault_cases.py``, run now in a temporary folder: the case, the exit status and the
    line the command printed, and what is kept (checked by the case, as the tests check it)."""
    import importlib.util
    import tempfile

    spec = importlib.util.spec_from_file_location("fault_cases", ROOT / "tests" / "fault_cases.py")
    cases = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = cases  # dataclasses look their module up there
    spec.loader.exec_module(cases)
    rows = []
    for case in cases.CASES:
        with tempfile.TemporaryDirectory() as folder:
            outcome = cases.run_case(case, Path(folder))
            case.check(Path(folder))
            line = outcome.line(case.message)
            if outcome.exit_code != case.exit_code or line is None:
                raise RuntimeError(f"fault case {case.name} answered {outcome.exit_code}: {outcome.err + outcome.out}")
            line = line.replace(folder, "…")
        rows.append([case.case, outcome.exit_code, f"`{line}`" if not set("`|") & set(line) else escape(line), case.kept])
    out = ["| case | exit | what sei says | what is kept |", "|---|---|---|---|"]
    out += ["| " + " | ".join([escape(c), str(e), m, escape(k)]) + " |" for c, e, m, k in rows]
    return "\n".join(out) + "\n"


def write_generated_pages(app) -> None:
    """The CLI reference, the fault table and the benchmark pages, written (when changed) before the build reads
    the sources."""
    source = Path(app.srcdir)
    pages = {source / GENERATED / "cli.md": cli_reference(), source / GENERATED / "faults.md": fault_table()}
    pages.update({source / "benchmarks" / f"{name}.md": benchmark_page(name, summary)
                  for name, summary in benchmark_scripts().items()})
    for path, text in pages.items():
        path.parent.mkdir(exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    for stale in (source / "benchmarks").glob("*.md"):  # a benchmark that was removed or renamed
        if stale.name != "index.md" and stale not in pages:
            stale.unlink()


def setup(app):
    app.add_directive("sei-registry", RegistryTable)
    app.add_directive("sei-benchmark-index", BenchmarkIndex)
    app.connect("builder-inited", write_generated_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
