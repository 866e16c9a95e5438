"""Read a folder of template files; a bad file is reported (file, field, reason) and skipped, never fatal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wopr_platform.templates.schemas import Template

SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 256 * 1024
_PACKAGE = Path(__file__).resolve().parent
_REASONS = {"extra_forbidden": "unknown field", "missing": "field required"}


@dataclass(frozen=True, slots=True)
class LoadError:
    """Why one template file (or the folder itself) could not be used."""

    file: str
    field: str | None
    reason: str

    def view(self) -> dict[str, Any]:
        return {"file": self.file, "field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Loaded:
    """A valid template and the file it came from."""

    template: Template
    file: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """The result of one load: the valid templates by name and every problem found."""

    directory: Path
    templates: Mapping[str, Loaded] = field(default_factory=dict)
    errors: tuple[LoadError, ...] = ()


def packaged_directory() -> Path:
    """The standard templates: bundled into the installed package, or the repository's `templates/` folder."""
    bundled = _PACKAGE / "standard"  # where the wheel puts the repository's templates/ (pyproject force-include)
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parents[2] / "templates"  # a source checkout: src/wopr_platform/templates -> <repo>/templates


def _field(loc: tuple[int | str, ...]) -> str | None:
    parts = [str(part) for part in loc if part != "[key]"]
    return ".".join(parts) or None


def _yaml_reason(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"invalid YAML: {err.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return f"invalid YAML: {err}"


def load_file(path: Path) -> tuple[Template | None, list[LoadError]]:
    """Parse and validate one file; on failure return every problem found in it."""
    name = path.name

    def fail(reason: str, at: str | None = None) -> tuple[None, list[LoadError]]:
        return None, [LoadError(name, at, reason)]

    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return fail(f"file is larger than {MAX_FILE_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        return fail(f"cannot read the file: {err.strerror or err}")
    except UnicodeDecodeError:
        return fail("the file is not UTF-8 text")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return fail(_yaml_reason(err))
    if not isinstance(data, dict):
        return fail("a template must be a mapping of fields, e.g. `name: my-template`")
    try:
        template = Template.model_validate(data)
    except ValidationError as err:
        return None, [
            LoadError(
                name,
                _field(tuple(item["loc"])),
                _REASONS.get(item["type"], str(item["msg"]).removeprefix("Value error, ")),
            )
            for item in err.errors()
        ]
    problems = template.problems()
    if problems:
        return None, [LoadError(name, at, reason) for at, reason in problems]
    return template, []


def load_directory(directory: Path) -> Catalog:
    """Load every `*.yaml` / `*.yml` file directly in `directory` (names sorted); skip and report bad ones."""
    if not directory.is_dir():
        return Catalog(directory, {}, (LoadError(str(directory), None, "templates directory does not exist"),))
    templates: dict[str, Loaded] = {}
    errors: list[LoadError] = []
    paths = sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))
    for path in paths:
        if not path.is_file():
            continue
        template, problems = load_file(path)
        errors.extend(problems)
        if template is None:
            continue
        if template.name in templates:
            first = templates[template.name].file
            errors.append(LoadError(path.name, "name", f"template {template.name} is already defined in {first}"))
            continue
        templates[template.name] = Loaded(template, path.name)
    return Catalog(directory, dict(sorted(templates.items())), tuple(errors))
