"""Just enough parsing of the deployment files to test them without a Docker engine.

- `Dockerfile`: stages, their parents and their instructions (continuation lines joined,
  comments dropped), ARG defaults substituted.
- `Makefile`: `NAME := value` variables and the recipe lines that run pip or aeserve.
- `.dockerignore`: Docker's matching rules (last pattern wins, `!` re-includes, a pattern
  matching a folder covers everything under it).
- Compose `${VAR:-default}` / `${VAR:?message}` interpolation.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: RUN, COPY, ENV, …"""
    value: str
    """Everything after the keyword, continuation lines joined with single spaces."""

    def exec_form(self) -> list[str]:
        """The JSON array of a CMD, ENTRYPOINT or HEALTHCHECK … CMD instruction."""
        text = self.value
        if self.keyword == "HEALTHCHECK":
            text = text[text.index(" CMD ") + len(" CMD ") :]
        parsed: list[str] = json.loads(text)
        return parsed


@dataclass
class Stage:
    name: str
    parent: str
    """The FROM image, or the name of an earlier stage."""
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, Stage]

    def chain(self, target: str) -> list[Stage]:
        """The stages a target is built from, the first FROM first."""
        stages = [self.stages[target]]
        while stages[-1].parent in self.stages:
            stages.append(self.stages[stages[-1].parent])
        return stages[::-1]

    def instructions(self, target: str) -> list[Instruction]:
        return [i for stage in self.chain(target) for i in stage.instructions]

    def last(self, target: str, keyword: str) -> Instruction:
        return [i for i in self.instructions(target) if i.keyword == keyword][-1]

    def args(self, target: str) -> dict[str, str]:
        """ARG defaults seen by a target's last stage (ARGs are scoped to their stage)."""
        defaults = dict(self.global_args)
        for i in self.stages[target].all("ARG"):
            name, _, default = i.value.partition("=")
            defaults[name] = default
        return defaults

    def commands(self, target: str) -> list[list[str]]:
        """The target's own RUN lines, split at `&&`, each a list of words, ARGs expanded."""
        args = self.args(target)
        found = []
        for run in self.stages[target].all("RUN"):
            for part in run.value.split(" && "):
                words = shlex.split(expand(part, args))
                if words:
                    found.append(words)
        return found


def expand(text: str, values: dict[str, str]) -> str:
    """`${NAME}` and `$NAME` from `values`; anything else is left as it is."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: values.get(m.group(1) or m.group(2), m.group(0)),
        text,
    )


def logical_lines(text: str) -> list[str]:
    """Lines with `\\` continuations joined; comment lines (also inside a continuation) dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        lines.append((pending + stripped).strip())
        pending = ""
    return lines


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical_lines(path.read_text()):
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = value.split()
            image = expand(words[-3] if len(words) >= 3 else words[-1], global_args)
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else image
            current = stages[name] = Stage(name=name, parent=image)
        elif current is None:
            if keyword == "ARG":
                name, _, default = value.partition("=")
                global_args[name] = default
        else:
            current.instructions.append(Instruction(keyword, value))
    return Dockerfile(global_args, stages)


def make_variables(path: Path) -> dict[str, str]:
    """`NAME := value` and `NAME ?= value` assignments of a Makefile."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^(\w+)\s*[:?]?=\s*(.*?)\s*$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def make_commands(path: Path, program: str) -> list[list[str]]:
    """The recipe commands of a Makefile that run `program` (`$(BIN)/program` or `-m program`),
    as words from the program on, Make variables expanded."""
    variables = make_variables(path)
    found = []
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if not line.startswith("\t"):
            continue
        line = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line)
        for part in line.split("&&"):
            words = shlex.split(part)
            for index, word in enumerate(words):
                if word == program or word.endswith("/" + program):
                    found.append([program, *words[index + 1 :]])
                    break
                if word == "-m" and words[index + 1 : index + 2] == [program]:
                    found.append(words[index + 1 :])
                    break
    return found


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves `path` (relative to the context) out of the build context."""
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        parts = path.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def read_dockerignore(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match syntax plus `**` (any number of folders), as Docker reads it."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out, index = out + pattern[index : end + 1], end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def compose_default(value: str) -> str:
    """A Compose value with each `${VAR:-default}` replaced by its default, as on a host
    where VAR is unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
